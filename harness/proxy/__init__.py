"""The recording proxy in front of the coordinator and each thread-B."""
