using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Streams.Common.Hashing;
using Streams.Common.Server.Storage;

namespace Streams.Common.Server.Metadata;

/// <summary>
/// The embedded metadata store of <c>streams standalone</c>: an in-memory map made durable by an append-only
/// journal in one file. Each mutation (or atomic commit) appends one record and fsyncs before it completes:
/// <c>length u32 | crc32c u32 | count u16 | (op u8, version i64, pathLength u16, path, dataLength i32, data) * count</c>.
/// On open the journal is replayed; a torn last record (a write cut short by a crash, never acknowledged) is dropped,
/// a bad record followed by others is corruption and stops the open. When the journal grows past four times the live
/// data it is rewritten as a snapshot (write, fsync, rename, fsync the directory).
/// Ephemeral nodes live in memory only: the "session" is this process, and they vanish when it ends.
/// </summary>
internal sealed class FileMetadataStore : IMetadataStore
{
    private const byte OpPut = 1;
    private const byte OpDelete = 2;
    private const byte OpSequence = 3;
    private const int RecordHeaderSize = 8;

    private readonly string _path;
    private readonly SortedDictionary<string, VersionedValue> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, VersionedValue> _ephemeral = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _sequences = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _nodeWatches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _childWatches = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _sessionLost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private FileStream _journal;
    private long _liveBytes;

    private FileMetadataStore(string path, FileStream journal)
    {
        _path = path;
        _journal = journal;
    }

    /// <summary>The session is the process: it is lost only when the store is disposed.</summary>
    public Task SessionLost => _sessionLost.Task;

    /// <summary>A local file: reachable while the store is open.</summary>
    public bool IsConnected => !_sessionLost.Task.IsCompleted;

    /// <summary>
    /// Opens (or creates) the store in <paramref name="directory"/>. Throws <see cref="InvalidDataException"/> if the
    /// journal is corrupt, and <see cref="IOException"/> if another process has it open.
    /// </summary>
    public static FileMetadataStore Open(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "metadata.journal");
        var created = !File.Exists(path);
        var journal = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 4096, FileOptions.None);
        if (created)
        {
            DurableFiles.FsyncDirectory(directory);
        }

        var store = new FileMetadataStore(path, journal);
        try
        {
            store.Replay();
        }
        catch
        {
            journal.Dispose();
            throw;
        }

        return store;
    }

    public async ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default) =>
        (await GetAndMaybeWatchAsync(path, watch: false, cancellationToken)).Value;

    public async ValueTask<(VersionedValue? Value, Task Changed)> GetAndWatchAsync(string path, CancellationToken cancellationToken = default)
    {
        var (value, changed) = await GetAndMaybeWatchAsync(path, watch: true, cancellationToken);
        return (value, changed!);
    }

    public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        TryCommitAsync([new MetadataOp.Create(path, data.ToArray())], cancellationToken);

    // The version comes from the commit's own critical section: read back afterwards, it could be a later writer's,
    // and a caller that passed it to its next compare-and-set would overwrite that writer's update.
    public async ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default) =>
        (await CommitAsync([new MetadataOp.Set(path, data.ToArray(), expectedVersion)], cancellationToken))?[0];

    public ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default) =>
        TryCommitAsync([new MetadataOp.Delete(path, expectedVersion)], cancellationToken);

    public async ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default) =>
        (await ChildrenAsync(path, watch: false, cancellationToken)).Children;

    public async ValueTask<(IReadOnlyList<string> Children, Task Changed)> GetChildrenAndWatchAsync(string path, CancellationToken cancellationToken = default)
    {
        var (children, changed) = await ChildrenAsync(path, watch: true, cancellationToken);
        return (children, changed!);
    }

    public async ValueTask<bool> TryCreateEphemeralAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (Exists(path))
            {
                return false;
            }

            _ephemeral[path] = new VersionedValue(data.ToArray(), 0);
            Changed(path);
            return true;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(prefix);
        var parent = MetadataPaths.Parent(prefix);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var next = _sequences.GetValueOrDefault(parent) + 1;
            var path = prefix + (next - 1).ToString("D10", CultureInfo.InvariantCulture);
            var value = data.ToArray();
            if (ephemeral)
            {
                Append([(OpSequence, parent, next, [])]);
                _ephemeral[path] = new VersionedValue(value, 0);
            }
            else
            {
                Append([(OpSequence, parent, next, []), (OpPut, path, 0, value)]);
                Put(path, value, 0);
            }

            _sequences[parent] = next;
            Changed(path);
            return path;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default) =>
        await CommitAsync(operations, cancellationToken) is not null;

    public async ValueTask DisposeAsync()
    {
        await _lock.WaitAsync();
        _sessionLost.TrySetResult();
        foreach (var watch in _nodeWatches.Values.Concat(_childWatches.Values))
        {
            watch.TrySetResult();
        }

        await _journal.DisposeAsync();
        _lock.Dispose();
    }

    // ---- State ---------------------------------------------------------------------------------------

    /// <summary>
    /// Applies the operations atomically; returns, for each, the version it leaves its path at (the version it
    /// created, set, deleted or checked), or null if a condition failed.
    /// </summary>
    private async ValueTask<long[]?> CommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken)
    {
        foreach (var op in operations)
        {
            MetadataPaths.Validate(op.Path);
        }

        await _lock.WaitAsync(cancellationToken);
        try
        {
            // Check every condition against the state as the earlier operations of the commit leave it.
            var pending = new Dictionary<string, VersionedValue?>(StringComparer.Ordinal);
            VersionedValue? Current(string p) => pending.TryGetValue(p, out var v) ? v : _values.TryGetValue(p, out var stored) ? stored : _ephemeral.TryGetValue(p, out var e) ? e : null;
            var records = new List<(byte Op, string Path, long Version, byte[] Data)>();
            var versions = new long[operations.Count];
            for (var i = 0; i < operations.Count; i++)
            {
                var op = operations[i];
                var current = Current(op.Path);
                switch (op)
                {
                    case MetadataOp.Create create when current is null:
                        pending[op.Path] = new VersionedValue(create.Data, 0);
                        records.Add((OpPut, op.Path, 0, create.Data));
                        break;
                    case MetadataOp.Set set when current is { } c && (set.ExpectedVersion == -1 || c.Version == set.ExpectedVersion):
                        pending[op.Path] = new VersionedValue(set.Data, c.Version + 1);
                        versions[i] = c.Version + 1;
                        if (!_ephemeral.ContainsKey(op.Path))
                        {
                            records.Add((OpPut, op.Path, c.Version + 1, set.Data));
                        }

                        break;
                    case MetadataOp.Delete delete when current is { } c && (delete.ExpectedVersion == -1 || c.Version == delete.ExpectedVersion):
                        pending[op.Path] = null;
                        versions[i] = c.Version;
                        if (!_ephemeral.ContainsKey(op.Path))
                        {
                            records.Add((OpDelete, op.Path, c.Version, []));
                        }

                        break;
                    case MetadataOp.Check check when current is { } c && c.Version == check.ExpectedVersion:
                        versions[i] = c.Version;
                        break;
                    default:
                        return null;
                }
            }

            if (records.Count > 0)
            {
                Append(records);
            }

            foreach (var (path, value) in pending)
            {
                if (value is { } v)
                {
                    if (_ephemeral.ContainsKey(path))
                    {
                        _ephemeral[path] = v;
                    }
                    else
                    {
                        Put(path, v.Data, v.Version);
                    }
                }
                else if (!_ephemeral.Remove(path))
                {
                    Remove(path);
                }

                Changed(path);
            }

            CompactIfLarge();
            return versions;
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask<(VersionedValue? Value, Task? Changed)> GetAndMaybeWatchAsync(string path, bool watch, CancellationToken cancellationToken)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var value = _values.TryGetValue(path, out var stored) ? stored : _ephemeral.TryGetValue(path, out var e) ? e : (VersionedValue?)null;
            return (value is { } v ? v with { Data = v.Data.ToArray() } : null, watch ? WatchOf(_nodeWatches, path) : null);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask<(IReadOnlyList<string> Children, Task? Changed)> ChildrenAsync(string path, bool watch, CancellationToken cancellationToken)
    {
        MetadataPaths.Validate(path);
        var prefix = path == "/" ? "/" : path + "/";
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var children = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var key in _values.Keys.Concat(_ephemeral.Keys))
            {
                if (key.Length > prefix.Length && key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    var rest = key.AsSpan(prefix.Length);
                    var slash = rest.IndexOf('/');
                    children.Add((slash < 0 ? rest : rest[..slash]).ToString());
                }
            }

            return ([.. children], watch ? WatchOf(_childWatches, path) : null);
        }
        finally
        {
            _lock.Release();
        }
    }

    private bool Exists(string path) => _values.ContainsKey(path) || _ephemeral.ContainsKey(path);

    private void Put(string path, byte[] data, long version)
    {
        if (_values.TryGetValue(path, out var old))
        {
            _liveBytes -= RecordSize(path, old.Data.Length);
        }

        _values[path] = new VersionedValue(data, version);
        _liveBytes += RecordSize(path, data.Length);
    }

    private void Remove(string path)
    {
        if (_values.Remove(path, out var old))
        {
            _liveBytes -= RecordSize(path, old.Data.Length);
        }
    }

    private static Task WatchOf(Dictionary<string, TaskCompletionSource> watches, string path)
    {
        if (!watches.TryGetValue(path, out var watch))
        {
            watches[path] = watch = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        return watch.Task;
    }

    /// <summary>Fires the node's watch and its parent's child watch (lock held).</summary>
    private void Changed(string path)
    {
        if (_nodeWatches.Remove(path, out var node))
        {
            node.TrySetResult();
        }

        if (_childWatches.Remove(MetadataPaths.Parent(path), out var children))
        {
            children.TrySetResult();
        }
    }

    // ---- Journal -------------------------------------------------------------------------------------

    private static int RecordSize(string path, int dataLength) => RecordHeaderSize + 2 + 1 + 8 + 2 + Encoding.UTF8.GetByteCount(path) + 4 + dataLength;

    private void Append(IReadOnlyList<(byte Op, string Path, long Version, byte[] Data)> operations)
    {
        _journal.Seek(0, SeekOrigin.End);
        _journal.Write(Encode(operations));
        _journal.Flush(flushToDisk: true);
    }

    private static byte[] Encode(IReadOnlyList<(byte Op, string Path, long Version, byte[] Data)> operations)
    {
        var body = new List<byte>(64);
        Span<byte> scratch = stackalloc byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(scratch, (ushort)operations.Count);
        body.AddRange(scratch[..2]);
        foreach (var (op, path, version, data) in operations)
        {
            var pathBytes = Encoding.UTF8.GetBytes(path);
            body.Add(op);
            BinaryPrimitives.WriteInt64LittleEndian(scratch, version);
            body.AddRange(scratch[..8]);
            BinaryPrimitives.WriteUInt16LittleEndian(scratch, (ushort)pathBytes.Length);
            body.AddRange(scratch[..2]);
            body.AddRange(pathBytes);
            BinaryPrimitives.WriteInt32LittleEndian(scratch, data.Length);
            body.AddRange(scratch[..4]);
            body.AddRange(data);
        }

        var record = new byte[RecordHeaderSize + body.Count];
        body.CopyTo(record, RecordHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)body.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), Crc32C.Compute(record.AsSpan(RecordHeaderSize)));
        return record;
    }

    private void Replay()
    {
        _journal.Seek(0, SeekOrigin.Begin);
        var bytes = new byte[_journal.Length];
        _journal.ReadExactly(bytes);
        var position = 0;
        while (position + RecordHeaderSize <= bytes.Length)
        {
            var bodyLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position));
            if (bodyLength < 2 || position + RecordHeaderSize + bodyLength > bytes.Length)
            {
                break;
            }

            var body = bytes.AsSpan(position + RecordHeaderSize, (int)bodyLength);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position + 4)) != Crc32C.Compute(body))
            {
                // A bad last record is a write cut short; a bad record with others after it is corruption.
                if (position + RecordHeaderSize + bodyLength == bytes.Length)
                {
                    break;
                }

                throw new InvalidDataException(
                    $"The metadata journal {_path} is corrupt at offset {position} (checksum mismatch with {bytes.Length - position} bytes after it). " +
                    "Refusing to start rather than lose the records that follow; restore the file from a backup.");
            }

            ApplyRecord(body);
            position += RecordHeaderSize + (int)bodyLength;
        }

        // Anything after the last whole record is a write the crash cut short: it was never acknowledged.
        if (position < bytes.Length)
        {
            _journal.SetLength(position);
            _journal.Flush(flushToDisk: true);
        }
    }

    private void ApplyRecord(ReadOnlySpan<byte> body)
    {
        var count = BinaryPrimitives.ReadUInt16LittleEndian(body);
        var at = 2;
        for (var i = 0; i < count; i++)
        {
            var op = body[at];
            var version = BinaryPrimitives.ReadInt64LittleEndian(body[(at + 1)..]);
            var pathLength = BinaryPrimitives.ReadUInt16LittleEndian(body[(at + 9)..]);
            var path = Encoding.UTF8.GetString(body.Slice(at + 11, pathLength));
            var dataLength = BinaryPrimitives.ReadInt32LittleEndian(body[(at + 11 + pathLength)..]);
            var data = body.Slice(at + 15 + pathLength, dataLength).ToArray();
            at += 15 + pathLength + dataLength;
            switch (op)
            {
                case OpPut:
                    Put(path, data, version);
                    break;
                case OpDelete:
                    Remove(path);
                    break;
                case OpSequence:
                    _sequences[path] = version;
                    break;
            }
        }
    }

    private void CompactIfLarge()
    {
        if (_journal.Length <= (4 * _liveBytes) + (1024 * 1024))
        {
            return;
        }

        var temp = _path + ".compact";
        using (var snapshot = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var (parent, counter) in _sequences)
            {
                snapshot.Write(Encode([(OpSequence, parent, counter, [])]));
            }

            foreach (var (path, value) in _values)
            {
                snapshot.Write(Encode([(OpPut, path, value.Version, value.Data)]));
            }

            snapshot.Flush(flushToDisk: true);
        }

        _journal.Dispose();
        File.Move(temp, _path, overwrite: true);
        DurableFiles.FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
        _journal = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
    }
}
