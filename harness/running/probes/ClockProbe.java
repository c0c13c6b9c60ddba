// Clock probe for harness.clock.selftest: answers one stdin command per line on stdout.
// Clocks: "wall" -> "wall <System.currentTimeMillis()/1000>", "instant" -> "instant
// <Instant.now()>", "date" -> "date <new Date().getTime()/1000>" (all in epoch seconds),
// "mono" -> "mono <System.nanoTime()/1e9>".
// Timed waits of 500 ms: "sleep" Thread.sleep, "wait" Object.wait, "park"
// LockSupport.parkNanos, "accept" ServerSocket.accept with soTimeout (the timeout is expected),
// "sched" a ScheduledExecutorService delay; each runs on its own thread (several may be sent at
// once) and replies "<command> <elapsed on nanoTime> <process CPU seconds spent meanwhile>"
// (a wait that spins instead of blocking burns CPU). Every wait is warmed up (1 ms) before
// "ready", so class loading is not timed.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.SocketTimeoutException;
import java.time.Instant;
import java.util.Date;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

public class ClockProbe {
    static final Object LOCK = new Object();
    static final ScheduledExecutorService SCHEDULER = Executors.newSingleThreadScheduledExecutor(
            r -> {
                Thread t = new Thread(r, "probe-scheduler");
                t.setDaemon(true);
                return t;
            });

    static long cpuNanos() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean) {
            return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime();
        }
        return 0;
    }

    static final String[] WAITS = {"sleep", "wait", "park", "accept", "sched"};

    static void waitFor(String command, int millis) throws Exception {
        switch (command) {
            case "sleep":
                Thread.sleep(millis);
                break;
            case "wait":
                synchronized (LOCK) {
                    LOCK.wait(millis);
                }
                break;
            case "park":
                LockSupport.parkNanos(millis * 1_000_000L);
                break;
            case "accept":
                try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                    server.setSoTimeout(millis);
                    server.accept().close();
                } catch (SocketTimeoutException expected) {
                    // the timeout is the point
                }
                break;
            case "sched":
                SCHEDULER.schedule(() -> { }, millis, TimeUnit.MILLISECONDS).get();
                break;
            default:
                throw new IllegalArgumentException(command);
        }
    }

    static void timed(String command) {
        try {
            long cpu = cpuNanos();
            long start = System.nanoTime();
            waitFor(command, 500);
            long elapsed = System.nanoTime() - start;
            reply(String.format(Locale.ROOT, "%s %.6f %.6f", command, elapsed / 1e9, (cpuNanos() - cpu) / 1e9));
        } catch (Exception e) {
            reply("error " + command + " " + e);
        }
    }

    static synchronized void reply(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        cpuNanos(); // load the management classes before any command is timed
        for (String command : WAITS) {
            waitFor(command, 1);
        }
        reply("ready java " + System.getProperty("java.version"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String command = line.trim();
            switch (command) {
                case "wall":
                    reply(String.format(Locale.ROOT, "wall %.3f", System.currentTimeMillis() / 1000.0));
                    break;
                case "instant":
                    Instant now = Instant.now();
                    reply(String.format(Locale.ROOT, "instant %d.%09d", now.getEpochSecond(), now.getNano()));
                    break;
                case "date":
                    reply(String.format(Locale.ROOT, "date %.3f", new Date().getTime() / 1000.0));
                    break;
                case "mono":
                    reply(String.format(Locale.ROOT, "mono %.6f", System.nanoTime() / 1e9));
                    break;
                case "sleep":
                case "wait":
                case "park":
                case "accept":
                case "sched":
                    Thread waiter = new Thread(() -> timed(command), "probe-" + command);
                    waiter.setDaemon(true);
                    waiter.start();
                    break;
                default:
                    reply("error " + command);
            }
        }
    }
}
