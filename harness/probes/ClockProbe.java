// Clock probe for harness.clock.selftest: answers one stdin command per line on stdout.
// Clocks: "wall" -> "wall <System.currentTimeMillis()/1000>", "instant" -> "instant
// <Instant.now()>", "date" -> "date <new Date().getTime()/1000>" (all in epoch seconds),
// "mono" -> "mono <System.nanoTime()/1e9>".
// Timed waits of 500 ms: "sleep" Thread.sleep, "wait" Object.wait, "park"
// LockSupport.parkNanos, "accept" ServerSocket.accept with soTimeout (the timeout is expected),
// "sched" a ScheduledExecutorService delay; each replies "<command> <elapsed on nanoTime>
// <process CPU seconds spent meanwhile>" (a wait that spins instead of blocking burns CPU).
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

    static boolean waitFor(String command) throws Exception {
        switch (command) {
            case "sleep":
                Thread.sleep(500);
                return true;
            case "wait":
                synchronized (LOCK) {
                    LOCK.wait(500);
                }
                return true;
            case "park":
                LockSupport.parkNanos(500_000_000L);
                return true;
            case "accept":
                try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                    server.setSoTimeout(500);
                    server.accept().close();
                } catch (SocketTimeoutException expected) {
                    // the timeout is the point
                }
                return true;
            case "sched":
                SCHEDULER.schedule(() -> { }, 500, TimeUnit.MILLISECONDS).get();
                return true;
            default:
                return false;
        }
    }

    public static void main(String[] args) throws Exception {
        cpuNanos(); // load the management classes before any command is timed
        System.out.println("ready java " + System.getProperty("java.version"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String command = line.trim();
            switch (command) {
                case "wall":
                    System.out.printf(Locale.ROOT, "wall %.3f%n", System.currentTimeMillis() / 1000.0);
                    continue;
                case "instant":
                    Instant now = Instant.now();
                    System.out.printf(Locale.ROOT, "instant %d.%09d%n", now.getEpochSecond(), now.getNano());
                    continue;
                case "date":
                    System.out.printf(Locale.ROOT, "date %.3f%n", new Date().getTime() / 1000.0);
                    continue;
                case "mono":
                    System.out.printf(Locale.ROOT, "mono %.6f%n", System.nanoTime() / 1e9);
                    continue;
                default:
                    break;
            }
            long cpu = cpuNanos();
            long start = System.nanoTime();
            if (!waitFor(command)) {
                System.out.println("error " + command);
                continue;
            }
            long elapsed = System.nanoTime() - start;
            System.out.printf(Locale.ROOT, "%s %.6f %.6f%n", command, elapsed / 1e9, (cpuNanos() - cpu) / 1e9);
        }
    }
}
