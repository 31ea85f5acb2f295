using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Streams.Coordination.Metadata;

/// <summary>
/// The embedded metadata store of <c>streams standalone</c>: an in-memory map made durable by an append-only
/// journal in one file (<see cref="MetadataJournal"/>: framing, crash rules, group commit). Each mutation (or atomic
/// commit) appends one record whose body is
/// <c>count u16 | (op u8, version i64, pathLength u16, path, dataLength i32, data) * count</c>.
/// On open the journal is replayed. When it grows past four times the live data it is rewritten as a snapshot.
/// Ephemeral nodes live in memory only: the "session" is this process, and they vanish when it ends.
/// <para>
/// Every operation decides and applies its change under one async lock, appends its record there (so the journal's
/// order is the order of the decisions), and releases the lock before the fsync; then it waits for a flush that
/// covers every record it saw. So concurrent mutations share fsyncs, and nothing is acknowledged before the fsync
/// that covers it: reads and failed conditions wait too, so no answer reflects a change a crash could undo. If the
/// journal faults (an I/O error), the session is lost and every later call throws; a restart replays the journal.
/// </para>
/// </summary>
public sealed class FileMetadataStore : IMetadataStore
{
    private const byte OpPut = 1;
    private const byte OpDelete = 2;
    private const byte OpSequence = 3;

    private readonly SortedDictionary<string, VersionedValue> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, VersionedValue> _ephemeral = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _sequences = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _nodeWatches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource> _childWatches = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _sessionLost = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guards the state above and orders the journal's appends and rewrites.
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly MetadataJournal _journal;
    private long _liveBytes;
    private bool _disposed;
    private Task _compaction = Task.CompletedTask;

    // Replays into the state, which the field initializers have set up.
    private FileMetadataStore(string path) => _journal = MetadataJournal.Open(path, ApplyRecord, OnJournalFault);

    /// <summary>The session is the process: it is lost when the store is disposed or faults.</summary>
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
        return new FileMetadataStore(Path.Combine(directory, "metadata.journal"));
    }

    /// <summary>The journal fsyncs run for group commit; for tests.</summary>
    internal long FsyncCount => _journal.FsyncCount;

    /// <summary>For tests: awaited after a compacted copy is written and before it is swapped in.</summary>
    internal Func<Task>? BeforeCompactionSwap { get; set; }

    /// <summary>The compaction running, or a completed task; for tests.</summary>
    internal Task Compaction => _compaction;

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
        return await DecideAsync(() =>
        {
            var created = !Exists(path);
            if (created)
            {
                _ephemeral[path] = new VersionedValue(data.ToArray(), 0);
                Changed(path);
            }

            return created;
        }, cancellationToken);
    }

    public async ValueTask<string> CreateSequentialAsync(string prefix, ReadOnlyMemory<byte> data, bool ephemeral = false, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(prefix);
        var parent = MetadataPaths.Parent(prefix);
        return await DecideAsync(() =>
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
        }, cancellationToken);
    }

    public async ValueTask<bool> TryCommitAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default) =>
        await CommitAsync(operations, cancellationToken) is not null;

    /// <summary>
    /// Waits for the records already written to be flushed (their writers are waiting for that), then closes the
    /// journal. Calls waiting for the lock, and later calls, throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _compaction;
        await _lock.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                await _journal.DurableAsync(_journal.Written);
            }
            catch (IOException)
            {
                // Faulted: the waiters have the error already, and the file closes all the same.
            }

            LoseSession();
            _journal.Dispose();
        }
        finally
        {
            _lock.Release();
        }
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

        long[]? versions;
        long seen;
        await _lock.WaitAsync(cancellationToken);
        try
        {
            ThrowIfUnusable();
            versions = Decide(operations);
            seen = _journal.Written;
            if (versions is not null)
            {
                StartCompactionIfLarge();
            }
        }
        finally
        {
            _lock.Release();
        }

        await _journal.DurableAsync(seen);
        return versions;
    }

    /// <summary>Checks the conditions, and if they hold writes the record and applies the commit (lock held).</summary>
    private long[]? Decide(IReadOnlyList<MetadataOp> operations)
    {
        // Check every condition against the state as the earlier operations of the commit leave it. A node keeps
        // its kind through a set; a create makes a persistent node, even where the commit deleted an ephemeral one.
        var pending = new Dictionary<string, (VersionedValue? Value, bool Ephemeral)>(StringComparer.Ordinal);
        (VersionedValue? Value, bool Ephemeral) Current(string p) =>
            pending.TryGetValue(p, out var v) ? v
            : _values.TryGetValue(p, out var stored) ? (stored, false)
            : _ephemeral.TryGetValue(p, out var e) ? (e, true)
            : (null, false);
        var records = new List<(byte Op, string Path, long Version, byte[] Data)>();
        var versions = new long[operations.Count];
        for (var i = 0; i < operations.Count; i++)
        {
            var op = operations[i];
            var (current, ephemeral) = Current(op.Path);
            switch (op)
            {
                case MetadataOp.Create create when current is null:
                    pending[op.Path] = (new VersionedValue(create.Data, 0), false);
                    records.Add((OpPut, op.Path, 0, create.Data));
                    break;
                case MetadataOp.Set set when current is { } c && (set.ExpectedVersion == -1 || c.Version == set.ExpectedVersion):
                    pending[op.Path] = (new VersionedValue(set.Data, c.Version + 1), ephemeral);
                    versions[i] = c.Version + 1;
                    if (!ephemeral)
                    {
                        records.Add((OpPut, op.Path, c.Version + 1, set.Data));
                    }

                    break;
                case MetadataOp.Delete delete when current is { } c && (delete.ExpectedVersion == -1 || c.Version == delete.ExpectedVersion):
                    pending[op.Path] = (null, ephemeral);
                    versions[i] = c.Version;
                    if (!ephemeral)
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

        foreach (var (path, (value, ephemeral)) in pending)
        {
            _ephemeral.Remove(path);
            if (value is not { } v)
            {
                Remove(path);
            }
            else if (ephemeral)
            {
                _ephemeral[path] = v;
            }
            else
            {
                Put(path, v.Data, v.Version);
            }

            Changed(path);
        }

        return versions;
    }

    private async ValueTask<(VersionedValue? Value, Task? Changed)> GetAndMaybeWatchAsync(string path, bool watch, CancellationToken cancellationToken)
    {
        MetadataPaths.Validate(path);
        return await DecideAsync<(VersionedValue?, Task?)>(() =>
        {
            var value = _values.TryGetValue(path, out var stored) ? stored : _ephemeral.TryGetValue(path, out var e) ? e : (VersionedValue?)null;
            return (value is { } v ? v with { Data = v.Data.ToArray() } : null, watch ? WatchOf(_nodeWatches, path) : null);
        }, cancellationToken);
    }

    private async ValueTask<(IReadOnlyList<string> Children, Task? Changed)> ChildrenAsync(string path, bool watch, CancellationToken cancellationToken)
    {
        MetadataPaths.Validate(path);
        var prefix = path == "/" ? "/" : path + "/";
        return await DecideAsync<(IReadOnlyList<string>, Task?)>(() =>
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
        }, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="decide"/> under the lock on a usable store, then waits for a flush covering every record
    /// written by then: no answer reflects a change a crash could undo.
    /// </summary>
    private async ValueTask<T> DecideAsync<T>(Func<T> decide, CancellationToken cancellationToken)
    {
        T result;
        long seen;
        await _lock.WaitAsync(cancellationToken);
        try
        {
            ThrowIfUnusable();
            result = decide();
            seen = _journal.Written;
        }
        finally
        {
            _lock.Release();
        }

        await _journal.DurableAsync(seen);
        return result;
    }

    /// <summary>Throws if the store is disposed or its journal faulted (lock held).</summary>
    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _journal.ThrowIfFaulted();
    }

    /// <summary>The journal faulted: the session is lost now; the watches, the lock's, fire once it is free.</summary>
    private void OnJournalFault(Exception cause)
    {
        _sessionLost.TrySetResult();
        _ = Task.Run(async () =>
        {
            await _lock.WaitAsync();
            try
            {
                LoseSession();
            }
            finally
            {
                _lock.Release();
            }
        });
    }

    /// <summary>Ends the session: ephemeral nodes are gone for everyone relying on them, and watches fire.</summary>
    private void LoseSession()
    {
        _sessionLost.TrySetResult();
        foreach (var watch in _nodeWatches.Values.Concat(_childWatches.Values))
        {
            watch.TrySetResult();
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

    private static int RecordSize(string path, int dataLength) => MetadataJournal.HeaderSize + 2 + 1 + 8 + 2 + Encoding.UTF8.GetByteCount(path) + 4 + dataLength;

    private void Append(IReadOnlyList<(byte Op, string Path, long Version, byte[] Data)> operations) => _journal.Append(Encode(operations));

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

        return [.. body];
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

    /// <summary>
    /// Starts compacting the journal when it has grown well past the live state (lock held): the snapshot is taken
    /// here, in memory; writing and fsyncing it runs without the lock (<see cref="CompactAsync"/>), and only putting it
    /// in place takes the lock again. One compaction at a time.
    /// </summary>
    private void StartCompactionIfLarge()
    {
        if (!_compaction.IsCompleted || _journal.Length <= (4 * _liveBytes) + (1024 * 1024))
        {
            return;
        }

        // References only (values' arrays are never changed in place); they are encoded without the lock.
        var snapshot = new List<(byte Op, string Path, long Version, byte[] Data)>(_sequences.Count + _values.Count);
        foreach (var (parent, counter) in _sequences)
        {
            snapshot.Add((OpSequence, parent, counter, []));
        }

        foreach (var (path, value) in _values)
        {
            snapshot.Add((OpPut, path, value.Version, value.Data));
        }

        var from = _journal.Length;
        _compaction = Task.Run(() => CompactAsync(snapshot, from));
    }

    /// <summary>
    /// Writes the compacted journal beside the current one, then swaps it in under the lock. A copy that could not be
    /// written is dropped and the journal stays as it was (the next large commit tries again); a failed swap faults the
    /// journal (<see cref="MetadataJournal.CompleteRewriteAsync"/>).
    /// </summary>
    private async Task CompactAsync(List<(byte Op, string Path, long Version, byte[] Data)> snapshot, long from)
    {
        PreparedRewrite prepared;
        try
        {
            var bodies = new List<byte[]>(snapshot.Count);
            foreach (var record in snapshot)
            {
                bodies.Add(Encode([record]));
            }

            prepared = await _journal.PrepareRewriteAsync(bodies, from);
            if (BeforeCompactionSwap is { } hook)
            {
                await hook();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }

        await _lock.WaitAsync();
        try
        {
            if (!_disposed)
            {
                await _journal.CompleteRewriteAsync(prepared);
            }
        }
        catch (IOException)
        {
            // The journal faulted before the swap: the store stopped serving already.
        }
        finally
        {
            _lock.Release();
        }
    }
}
