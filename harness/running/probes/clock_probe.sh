# Clock probe for harness.clock.selftest ("native" runtime: sh, date, sleep).
# Commands on stdin: "wall" -> "wall <date +%s.%N>"; "mono" -> "mono -" (no portable
# monotonic reader in sh); "sleep" -> sleep 0.5, then "sleep -".
echo "ready native"
while read -r command; do
  case "$command" in
    wall) echo "wall $(date +%s.%N)" ;;
    mono) echo "mono -" ;;
    sleep) sleep 0.5; echo "sleep -" ;;
    *) echo "error $command" ;;
  esac
done
