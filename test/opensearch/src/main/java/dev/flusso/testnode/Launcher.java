package dev.flusso.testnode;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Entry point of the test node JVM, the same for every engine.
 *
 * <pre>
 *   java -cp 'flusso-testnode.jar:lib/*' dev.flusso.testnode.Launcher -Epath.home=DIR [-Ekey=value ...]
 *        [--log-file FILE] [--plugin CLASS ...]
 *   java -cp flusso-testnode.jar dev.flusso.testnode.Launcher free-ports N
 * </pre>
 *
 * This class touches no engine or log4j class: it prepares the node's home and log configuration, then hands over
 * to the starter of the engine found on the class path ({@link OpenSearchStarter} or {@code ElasticsearchStarter}),
 * so that log4j does not initialise itself with its default configuration first. {@code --plugin} adds a plugin
 * class (loaded from the class path like the built-in modules) to the node.
 */
public final class Launcher {

    private Launcher() {}

    public static void main(String[] args) throws Throwable {
        if (args.length >= 1 && args[0].equals("free-ports")) {
            freePorts(args.length > 1 ? Integer.parseInt(args[1]) : 1);
            return;
        }
        Map<String, String> settings = new LinkedHashMap<>();
        List<String> plugins = new ArrayList<>();
        String logFile = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-E") && i + 1 < args.length) {
                putSetting(settings, args[++i]);
            } else if (a.startsWith("-E")) {
                putSetting(settings, a.substring(2));
            } else if (a.equals("--log-file") && i + 1 < args.length) {
                logFile = args[++i];
            } else if (a.equals("--plugin") && i + 1 < args.length) {
                plugins.add(args[++i]);
            } else {
                usage("unknown argument: " + a);
            }
        }
        String home = settings.get("path.home");
        if (home == null) {
            usage("-Epath.home=DIR is required");
        }
        Path homePath = Paths.get(home).toAbsolutePath().normalize();
        settings.put("path.home", homePath.toString());
        // defaults for a test node on loopback; every one of them can be overridden with -E
        settings.putIfAbsent("cluster.name", "flusso-test");
        settings.putIfAbsent("node.name", "node-1");
        settings.putIfAbsent("network.host", "127.0.0.1");
        settings.putIfAbsent("path.data", homePath.resolve("data").toString());
        settings.putIfAbsent("path.logs", homePath.resolve("logs").toString());
        if (!settings.containsKey("discovery.seed_hosts") && !settings.containsKey("discovery.seed_providers")) {
            settings.putIfAbsent("discovery.type", "single-node");
        }
        // The disk-based shard allocation decider would put read_only_allow_delete blocks on all indices when the
        // test machine's disk runs low. Off by default; it is a dynamic cluster setting, so a test can turn it on
        // again via PUT _cluster/settings. Setting index.blocks.read_only_allow_delete by hand always works.
        settings.putIfAbsent("cluster.routing.allocation.disk.threshold_enabled", "false");
        if (logFile == null) {
            logFile = homePath.resolve("logs").resolve(settings.get("node.name") + ".log").toString();
        }

        Path config = homePath.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(Paths.get(settings.get("path.logs")));
        Files.createDirectories(Paths.get(logFile).toAbsolutePath().getParent());
        try (InputStream in = Launcher.class.getResourceAsStream("node-log4j2.properties")) {
            if (in == null) {
                throw new IllegalStateException("node-log4j2.properties missing from the classpath");
            }
            Files.copy(in, config.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }
        System.setProperty("flusso.log.file", Paths.get(logFile).toAbsolutePath().toString());
        // as the distributions' JVM options do (opensearch.sh passes them too): the node closes log4j itself
        // after it has stopped, and no JMX
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");

        String starter = onClassPath("org.opensearch.node.Node") ? "dev.flusso.testnode.OpenSearchStarter"
            : onClassPath("org.elasticsearch.node.Node") ? "dev.flusso.testnode.ElasticsearchStarter"
            : null;
        if (starter == null) {
            usage("neither OpenSearch nor Elasticsearch is on the class path");
        }
        try {
            Class.forName(starter).getMethod("start", Map.class, Path.class, List.class).invoke(null, settings, config, plugins);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static boolean onClassPath(String className) {
        try {
            Class.forName(className, false, Launcher.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    private static void putSetting(Map<String, String> settings, String kv) {
        int eq = kv.indexOf('=');
        if (eq <= 0) {
            usage("setting must be key=value: " + kv);
        }
        settings.put(kv.substring(0, eq), kv.substring(eq + 1));
    }

    /** Prints N distinct loopback ports that were free a moment ago, one per line. */
    private static void freePorts(int n) throws IOException {
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            InetAddress loopback = InetAddress.getByName("127.0.0.1");
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0, 1, loopback);
                sockets.add(s);
                out.append(s.getLocalPort()).append('\n');
            }
            PrintStream ps = new PrintStream(System.out, true, StandardCharsets.UTF_8);
            ps.print(out);
            ps.flush();
        } finally {
            for (ServerSocket s : sockets) {
                s.close();
            }
        }
    }

    static void usage(String message) {
        System.err.println("flusso test node: " + message);
        System.err.println("usage: Launcher -Epath.home=DIR [-Ekey=value ...] [--log-file FILE] [--plugin CLASS ...]"
            + " | Launcher free-ports N");
        System.exit(64);
    }
}
