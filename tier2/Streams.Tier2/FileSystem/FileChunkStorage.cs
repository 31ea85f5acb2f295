using System.Collections.Concurrent;
using Streams.Common.Storage;

namespace Streams.Tier2.FileSystem;

/// <summary>
/// Chunks as files under a root directory (a local disk, or an NFS mount shared by every segment store).
/// A chunk is written to a temporary file, fsynced, renamed into place and its directory fsynced, so a chunk name
/// that exists always holds the whole chunk, even after a crash. Temporary files left by a crash are named
/// "*.tmp-*" and never listed.
/// <para>
/// The directories on the way are made durable too, before the first chunk in them is reported written: each one's
/// entry in its parent is fsynced once per process, whether this process created it or found it (a directory found
/// may be one that another writer, or a run that crashed, created but had not fsynced yet).
/// </para>
/// </summary>
public sealed class FileChunkStorage : IChunkStorage
{
    private const string TempMarker = ".tmp-";

    /// <summary>Directories remembered as durable; past this many the memory starts afresh (costing an fsync each).</summary>
    private const int MaxKnownDirectories = 16 * 1024;

    private readonly string _root;
    private readonly Action<string> _syncDirectory;
    private readonly ConcurrentDictionary<string, bool> _durableDirectories = new(StringComparer.Ordinal);

    public FileChunkStorage(string root)
        : this(root, DurableFiles.FsyncDirectory)
    {
    }

    /// <param name="root">The directory that holds the chunks.</param>
    /// <param name="syncDirectory">Makes a directory's entries durable (fsync; tests count the calls).</param>
    internal FileChunkStorage(string root, Action<string> syncDirectory)
    {
        _root = Path.GetFullPath(root);
        _syncDirectory = syncDirectory;
        Directory.CreateDirectory(_root);
    }

    public string Location => _root;

    public async Task WriteAsync(string name, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        var directory = Path.GetDirectoryName(path)!;
        await Io(name, async () =>
        {
            EnsureDirectoryDurable(directory);
            var temp = path + TempMarker + Guid.NewGuid().ToString("N");
            try
            {
                await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
                {
                    await file.WriteAsync(data, cancellationToken);
                    file.Flush(flushToDisk: true);
                }

                File.Move(temp, path, overwrite: true);
                _syncDirectory(directory);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }

            return 0;
        });
    }

    public Task<int> ReadAsync(string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var path = PathOf(name);
        return Io(name, async () =>
        {
            await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.Asynchronous);
            var total = 0;
            while (total < buffer.Length)
            {
                var read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer[total..], offset + total, cancellationToken);
                if (read == 0)
                {
                    break;
                }

                total += read;
            }

            return total;
        });
    }

    public Task<long> GetLengthAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        return Io(name, () => Task.FromResult(new FileInfo(path) is { Exists: true } info
            ? info.Length
            : throw new ChunkNotFoundException($"Chunk {name} does not exist in {_root}.")));
    }

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) =>
        Task.FromResult(File.Exists(PathOf(name)));

    public Task DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = PathOf(name);
        return Io(name, () =>
        {
            File.Delete(path);
            return Task.FromResult(0);
        });
    }

    public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        // Start at the deepest directory the prefix names, so listing one segment's chunks does not walk every file.
        var slash = prefix.LastIndexOf('/');
        var relative = slash < 0 ? "" : prefix[..(slash + 1)];
        if (relative.Length > 0)
        {
            ChunkNames.Validate(relative[..^1]); // no "..": the walk stays under the root
        }

        var directory = relative.Length == 0 ? _root : Path.Combine(_root, relative.TrimEnd('/').Replace('/', Path.DirectorySeparatorChar));
        return Walk(directory, relative, prefix, cancellationToken).ToAsyncEnumerable();
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>
    /// Chunk names under <paramref name="directory"/> (whose name is <paramref name="relative"/>) that start with
    /// <paramref name="prefix"/>, in ordinal order of the whole name: a directory sorts as its name plus '/', so its
    /// files land where their full names belong. One directory's entries are held at a time.
    /// </summary>
    private IEnumerable<string> Walk(string directory, string relative, string prefix, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        foreach (var (name, path, isDirectory) in Entries(directory, relative))
        {
            if (isDirectory)
            {
                if (name.StartsWith(prefix, StringComparison.Ordinal) || prefix.StartsWith(name, StringComparison.Ordinal))
                {
                    foreach (var file in Walk(path, name, prefix, cancellationToken))
                    {
                        yield return file;
                    }
                }
            }
            else if (name.StartsWith(prefix, StringComparison.Ordinal) && !name.Contains(TempMarker, StringComparison.Ordinal))
            {
                yield return name;
            }
        }
    }

    private List<(string Name, string Path, bool IsDirectory)> Entries(string directory, string relative)
    {
        var entries = new List<(string Name, string Path, bool IsDirectory)>();
        try
        {
            foreach (var entry in new DirectoryInfo(directory).EnumerateFileSystemInfos())
            {
                var isDirectory = entry is DirectoryInfo;
                entries.Add((relative + entry.Name + (isDirectory ? "/" : ""), entry.FullName, isDirectory));
            }
        }
        catch (DirectoryNotFoundException)
        {
            return []; // nothing under this prefix (or it was removed while listing)
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ChunkStorageUnavailableException($"Tier 2 ({Location}) could not list {relative}: {e.Message}", e);
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return entries;
    }

    private string PathOf(string name)
    {
        ChunkNames.Validate(name);
        return Path.Combine(_root, name.Replace('/', Path.DirectorySeparatorChar));
    }

    /// <summary>
    /// Creates missing directories up from the root and fsyncs each one's parent, once per process, so their entries
    /// survive a crash before a chunk in them is reported written.
    /// </summary>
    private void EnsureDirectoryDurable(string directory)
    {
        if (directory.Length <= _root.Length || (_durableDirectories.ContainsKey(directory) && Directory.Exists(directory)))
        {
            return;
        }

        var parent = Path.GetDirectoryName(directory)!;
        EnsureDirectoryDurable(parent);
        Directory.CreateDirectory(directory);
        _syncDirectory(parent);
        if (_durableDirectories.Count >= MaxKnownDirectories)
        {
            _durableDirectories.Clear();
        }

        _durableDirectories[directory] = true;
    }

    private static async Task<T> Io<T>(string name, Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (FileNotFoundException e)
        {
            throw new ChunkNotFoundException($"Chunk {name} does not exist ({e.Message}).");
        }
        catch (DirectoryNotFoundException e)
        {
            throw new ChunkNotFoundException($"Chunk {name} does not exist ({e.Message}).");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ChunkStorageUnavailableException($"Tier 2 I/O on chunk {name} failed: {e.Message}", e);
        }
    }
}
