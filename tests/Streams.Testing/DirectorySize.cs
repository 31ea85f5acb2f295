namespace Streams.Testing;

/// <summary>Bytes of the files under a directory, measured while a server may be creating and deleting them.</summary>
public static class DirectorySize
{
    public static long Of(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }

        long total = 0;
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
        {
            try
            {
                total += file.Length;
            }
            catch (FileNotFoundException)
            {
                // Deleted since it was listed.
            }
        }

        return total;
    }
}
