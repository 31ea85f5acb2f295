namespace Streams.Coordination.Metadata;

/// <summary>Path helpers shared by metadata store implementations.</summary>
internal static class MetadataPaths
{
    /// <summary>Throws unless <paramref name="path"/> is absolute, has no empty components and no trailing slash.</summary>
    public static void Validate(string path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || (path.Length > 1 && path[^1] == '/') || path.Contains("//", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{path}' is not a metadata path (absolute, '/'-separated, no empty parts).", nameof(path));
        }
    }

    public static string Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }

    public static string Combine(string parent, string child) => parent == "/" ? "/" + child : parent + "/" + child;
}
