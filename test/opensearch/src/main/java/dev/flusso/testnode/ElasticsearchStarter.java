package dev.flusso.testnode;

import org.elasticsearch.Build;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.FlussoNodeFactory;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts a real Elasticsearch node (the server jar and the transport-netty4 module from Maven Central, no x-pack, so
 * no security: plain HTTP) whose modules are loaded from the class path, the way Elasticsearch's test framework does.
 * Like {@link OpenSearchStarter} it skips what the distribution's bootstrap adds for production: no refusal to run
 * as root, no security manager or system call filter, no bootstrap checks. For tests on loopback only.
 */
public final class ElasticsearchStarter {

    /** Modules that the distribution ships: the one on Maven Central, and ours for GET / (rest-root is not there). */
    private static final List<String> MODULES = List.of(
        "org.elasticsearch.transport.netty4.Netty4Plugin", // transport-netty4: HTTP and node-to-node transport
        "dev.flusso.testnode.ElasticsearchRootPlugin"      // GET / and HEAD /, as the rest-root module answers them
    );

    private static final CountDownLatch KEEP_ALIVE = new CountDownLatch(1);

    private ElasticsearchStarter() {}

    /** Called by {@link Launcher} once the log file is known; returns when the node has been stopped. */
    public static void start(Map<String, String> map, Path config, List<String> extraPlugins) throws Exception {
        LogConfigurator.registerErrorListener();

        Settings.Builder builder = Settings.builder();
        map.forEach(builder::put);
        final Environment env = InternalSettingsPreparer.prepareEnvironment(builder.build(), Map.of(), config, () -> map.get("node.name"));
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, false);

        final org.apache.logging.log4j.Logger logger = org.apache.logging.log4j.LogManager.getLogger(Launcher.class);
        Thread.setDefaultUncaughtExceptionHandler((thread, t) -> {
            if (t instanceof Error && !(t instanceof StackOverflowError)) {
                // like Elasticsearch: a fatal error leaves the JVM in an unknown state, so die at once
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

        // what the bootstrap's initializeProbes does
        org.elasticsearch.monitor.process.ProcessProbe.getInstance();
        org.elasticsearch.monitor.os.OsProbe.getInstance();
        org.elasticsearch.monitor.jvm.JvmInfo.jvmInfo();

        final Node node;
        try {
            List<Class<? extends Plugin>> plugins = new ArrayList<>();
            for (String name : MODULES) {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            }
            for (String name : extraPlugins) {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            }
            node = FlussoNodeFactory.create(env, plugins);
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
        logger.info("flusso test node started: Elasticsearch {}, cluster [{}], node [{}], home [{}]", Build.current().version(),
            env.settings().get("cluster.name"), env.settings().get("node.name"), env.settings().get("path.home"));
        KEEP_ALIVE.await();
    }

    private static void shutdownLogging() {
        org.apache.logging.log4j.core.config.Configurator.shutdown(
            (org.apache.logging.log4j.core.LoggerContext) org.apache.logging.log4j.LogManager.getContext(false)
        );
    }
}
