namespace Streams.Testing;

/// <summary>Locations in the source tree, found from the test binary's directory.</summary>
public static class Repository
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Streams.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException($"No Streams.sln above {AppContext.BaseDirectory}.");
    });

    public static string Root => RootPath.Value;

    /// <summary>The built example program examples/<paramref name="name"/> of the same configuration as the running tests.</summary>
    public static string ExampleDll(string name)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var dll = Path.Combine(Root, "examples", name, "bin", configuration, "net10.0", name + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"The example {name} is not built at {dll}.");
    }

    /// <summary>The built CLI (streams.dll) of the same configuration as the running tests.</summary>
    public static string CliDll
    {
        get
        {
            // The test binaries live in tests/X/bin/{Configuration}/net10.0/.
            var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
            var dll = Path.Combine(Root, "tools", "Streams.Cli", "bin", configuration, "net10.0", "streams.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException($"The CLI is not built at {dll}.");
        }
    }
}
