package org.elasticsearch.node;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.FlussoClasspathPlugins;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsService;

import java.util.List;

/**
 * Builds an Elasticsearch node whose modules are plugin classes on the class path, the way Elasticsearch's test
 * framework (MockNode) does. It lives in this package because the node construction steps it customises are
 * package-private. The node runs no bootstrap checks, and no security manager is installed.
 */
public final class FlussoNodeFactory {

    private FlussoNodeFactory() {}

    public static Node create(Environment environment, List<Class<? extends Plugin>> plugins) {
        NodeServiceProvider services = new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment env, Settings settings) {
                return new FlussoClasspathPlugins(settings, env, plugins);
            }
        };
        return new Node(NodeConstruction.prepareConstruction(environment, services, true));
    }
}
