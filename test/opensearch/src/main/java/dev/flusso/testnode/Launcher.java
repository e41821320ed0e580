package dev.flusso.testnode;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
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
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Entry point of the test node JVM.
 *
 * <pre>
 *   java -cp 'target/classes:target/lib/*' dev.flusso.testnode.Launcher -Epath.home=DIR [-Ekey=value ...] [--log-file FILE]
 *   java -cp target/classes dev.flusso.testnode.Launcher free-ports N
 * </pre>
 *
 * This class must not touch OpenSearch or log4j classes before {@link #startNode} has configured logging, so that
 * log4j does not initialise itself with its default configuration first.
 */
public final class Launcher {

    private static final CountDownLatch KEEP_ALIVE = new CountDownLatch(1);

    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length >= 1 && args[0].equals("free-ports")) {
            freePorts(args.length > 1 ? Integer.parseInt(args[1]) : 1);
            return;
        }
        Map<String, String> settings = new LinkedHashMap<>();
        String logFile = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-E") && i + 1 < args.length) {
                putSetting(settings, args[++i]);
            } else if (a.startsWith("-E")) {
                putSetting(settings, a.substring(2));
            } else if (a.equals("--log-file") && i + 1 < args.length) {
                logFile = args[++i];
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

        startNode(settings, config);
    }

    private static void startNode(Map<String, String> map, Path config) throws Exception {
        // as the distribution's JVM options do (opensearch.sh passes them too): the node closes log4j itself
        // after it has stopped, and no JMX
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");
        // as OpenSearch's own launcher does: catch log4j status errors until logging is configured
        org.opensearch.common.logging.LogConfigurator.registerErrorListener();

        org.opensearch.common.settings.Settings.Builder builder = org.opensearch.common.settings.Settings.builder();
        map.forEach(builder::put);
        final org.opensearch.env.Environment env = org.opensearch.node.InternalSettingsPreparer.prepareEnvironment(
            builder.build(),
            Map.of(),
            config,
            () -> map.get("node.name")
        );
        org.opensearch.common.logging.LogConfigurator.setNodeName(org.opensearch.node.Node.NODE_NAME_SETTING.get(env.settings()));
        org.opensearch.common.logging.LogConfigurator.configure(env);

        final org.apache.logging.log4j.Logger logger = org.apache.logging.log4j.LogManager.getLogger(Launcher.class);
        Thread.setDefaultUncaughtExceptionHandler((thread, t) -> {
            if (t instanceof Error && !(t instanceof StackOverflowError)) {
                // like OpenSearch: a fatal error leaves the JVM in an unknown state, so die at once
                try {
                    logger.fatal("fatal error in thread [" + thread.getName() + "], exiting", t);
                    System.err.flush();
                } finally {
                    Runtime.getRuntime().halt(1);
                }
            } else {
                logger.error("uncaught exception in thread [" + thread.getName() + "]", t);
            }
        });

        // what Bootstrap#initializeProbes does
        org.opensearch.monitor.process.ProcessProbe.getInstance();
        org.opensearch.monitor.os.OsProbe.getInstance();
        org.opensearch.monitor.jvm.JvmInfo.jvmInfo();

        final FlussoNode node;
        try {
            node = new FlussoNode(env, FlussoNode.PLUGINS);
        } catch (Throwable t) {
            logger.fatal("failed to create the node", t);
            shutdownLogging();
            Runtime.getRuntime().halt(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                logger.info("stopping node (shutdown signal)");
                node.close();
                if (!node.awaitClose(10, TimeUnit.SECONDS)) {
                    logger.warn("node did not stop within 10 seconds");
                }
            } catch (Exception e) {
                logger.error("failed to stop the node", e);
            } finally {
                shutdownLogging();
                KEEP_ALIVE.countDown();
            }
        }, "flusso-node-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            logger.fatal("failed to start the node", t);
            System.exit(1); // runs the shutdown hook, which closes the node
        }
        logger.info("flusso test node started: cluster [{}], node [{}], home [{}]",
            env.settings().get("cluster.name"), env.settings().get("node.name"), env.settings().get("path.home"));
        KEEP_ALIVE.await();
    }

    private static void shutdownLogging() {
        org.apache.logging.log4j.core.config.Configurator.shutdown(
            (org.apache.logging.log4j.core.LoggerContext) org.apache.logging.log4j.LogManager.getContext(false)
        );
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

    private static void usage(String message) {
        System.err.println("flusso test node: " + message);
        System.err.println("usage: Launcher -Epath.home=DIR [-Ekey=value ...] [--log-file FILE] | Launcher free-ports N");
        System.exit(64);
    }
}
