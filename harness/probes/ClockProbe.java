// Clock probe for harness.clock.selftest: answers one stdin command per line on stdout.
// Commands: "wall" -> "wall <currentTimeMillis/1000>"; "mono" -> "mono <nanoTime/1e9>";
// "sleep" / "wait" -> Thread.sleep(500) / Object.wait(500), then "<command> <elapsed (nanoTime)>".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Locale;

public class ClockProbe {
    public static void main(String[] args) throws Exception {
        System.out.println("ready java " + System.getProperty("java.version"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        final Object lock = new Object();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String command = line.trim();
            if (command.equals("wall")) {
                System.out.printf(Locale.ROOT, "wall %.3f%n", System.currentTimeMillis() / 1000.0);
                continue;
            }
            if (command.equals("mono")) {
                System.out.printf(Locale.ROOT, "mono %.6f%n", System.nanoTime() / 1e9);
                continue;
            }
            long start = System.nanoTime();
            if (command.equals("sleep")) {
                Thread.sleep(500);
            } else if (command.equals("wait")) {
                synchronized (lock) {
                    lock.wait(500);
                }
            } else {
                System.out.println("error " + command);
                continue;
            }
            System.out.printf(Locale.ROOT, "%s %.6f%n", command, (System.nanoTime() - start) / 1e9);
        }
    }
}
