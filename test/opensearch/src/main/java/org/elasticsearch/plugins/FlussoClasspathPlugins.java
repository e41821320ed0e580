package org.elasticsearch.plugins;

import org.elasticsearch.Build;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.jdk.ModuleQualifiedExportsService;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The plugins service of the flusso Elasticsearch test node: the modules are plugin classes on the class path
 * (as in Elasticsearch's own test framework), not bundles in a modules/ directory, so the node runs from the Maven
 * Central jars without a distribution. It lives in this package because the loaded-plugin record and the plugin
 * instantiation helper of {@link PluginsService} are package-private.
 */
public class FlussoClasspathPlugins extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;
    private final PluginsAndModules info;

    public FlussoClasspathPlugins(Settings settings, Environment environment, List<Class<? extends Plugin>> classes) {
        // no modules/ and no plugins/ directory to scan
        super(settings, environment.configFile(), null, null);
        List<LoadedPlugin> loaded = new ArrayList<>();
        List<PluginDescriptor> descriptors = new ArrayList<>();
        for (Class<? extends Plugin> pluginClass : classes) {
            Plugin plugin = loadPlugin(pluginClass, settings, environment.configFile());
            PluginDescriptor descriptor = new PluginDescriptor(
                pluginClass.getName(),
                "classpath module",
                Build.current().version(),
                Build.current().version(),
                Integer.toString(Runtime.version().feature()),
                pluginClass.getName(),
                null,
                List.of(),
                false,
                false,
                false,
                false
            );
            loaded.add(new LoadedPlugin(descriptor, plugin));
            descriptors.add(descriptor);
        }
        this.classpathPlugins = List.copyOf(loaded);
        loadExtensions(this.classpathPlugins);
        // shown as modules, as the distribution shows transport-netty4 and the others
        this.info = new PluginsAndModules(List.of(), descriptors);
    }

    /** The server is not a named module here (it is on the class path): it has no qualified exports to add. */
    @Override
    protected void addServerExportsService(Map<String, List<ModuleQualifiedExportsService>> qualifiedExports) {}

    @Override
    protected final List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        return info;
    }
}
