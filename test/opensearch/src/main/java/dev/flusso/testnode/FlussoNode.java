package dev.flusso.testnode;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

import java.util.Collection;
import java.util.List;

/**
 * A real OpenSearch node whose modules are loaded from the classpath (the way the OpenSearch test framework's
 * MockNode does it), so it runs from the Maven Central jars without a distribution. Unlike the distribution's
 * Bootstrap it does not refuse to run as root, does not install a security manager or seccomp filter and runs no
 * bootstrap checks: it is meant for tests on loopback only.
 *
 * <p>Started by {@link Launcher}, which configures logging before this class (and its static loggers) is loaded.
 */
public class FlussoNode extends Node {

    /** Modules that the distribution ships and that flusso relies on. */
    public static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,          // transport-netty4: HTTP and node-to-node transport
        CommonAnalysisPlugin.class,  // analysis-common: the usual analyzers, tokenizers and filters
        ReindexPlugin.class,         // reindex: _reindex, _update_by_query, _delete_by_query
        MapperExtrasPlugin.class,    // mapper-extras: scaled_float, token_count, rank_feature, search_as_you_type
        PainlessPlugin.class         // lang-painless: scripts (scripted updates, *_by_query with a script)
    );

    public FlussoNode(Environment environment, Collection<Class<? extends Plugin>> classpathPlugins) {
        super(environment, classpathPlugins, true);
    }
}
