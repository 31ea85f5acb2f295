using System.Runtime.InteropServices;

namespace Streams.Common.Storage;

/// <summary>
/// File-system durability helpers. After a rename or a file creation, the directory entry itself must be
/// fsynced, or a crash can forget the rename even though the file's data was flushed.
/// </summary>
public static partial class DurableFiles
{
    private const int ReadOnly = 0;

    /// <summary>Fsyncs <paramref name="directory"/>'s entries (a no-op where the OS has no directory fsync).</summary>
    public static void FsyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }

        var fd = Open(directory, ReadOnly);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory {directory} to fsync it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {directory} failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Writes a file atomically and durably: temp file, fsync, rename, fsync the directory.</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> content)
    {
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(content);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
