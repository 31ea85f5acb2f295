using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Streams.Common.Hashing;
using Streams.Common.Storage;

namespace Streams.Coordination.Metadata;

/// <summary>
/// The append-only file behind <see cref="FileMetadataStore"/>: records framed as <c>length u32 | crc32c u32 | body</c>,
/// replayed on open, made durable by group commit, and rewritten whole when the store compacts.
/// <para>
/// Crash rules: records are written in order by one writer at a time, so a crash can tear only the last one; on open
/// a bad last record (never acknowledged) is dropped and the file cut back, a bad record followed by others is
/// corruption and stops the open. A record is acknowledged only after an fsync that covers it.
/// </para>
/// <para>
/// Group commit: <see cref="Append"/> writes the record (no fsync) and <see cref="DurableAsync"/> waits for a flush
/// that covers it. One flusher, on its own thread, runs one fsync for all the records written since its last, so
/// concurrent writers share it and no caller blocks a thread on the disk. It has its own thread rather than the
/// pool's because an fsync blocks it, and on a busy pool a queued flusher would run after the writers it should
/// batch, one fsync each.
/// </para>
/// <para>
/// An I/O error faults the journal: every waiter and later call gets it. After a failed write or fsync the file's
/// state is unknown (the kernel may have dropped the pages it could not write, so an fsync is never retried); a
/// restart replays it.
/// </para>
/// <see cref="Append"/>, <see cref="CompleteRewriteAsync"/> and <see cref="Dispose"/> must not run concurrently (the
/// store's lock orders them); <see cref="DurableAsync"/> and <see cref="PrepareRewriteAsync"/> may run alongside them.
/// </summary>
internal sealed class MetadataJournal : IDisposable
{
    /// <summary>Bytes before each record's body: its length and its CRC-32C.</summary>
    public const int HeaderSize = 8;

    private readonly string _path;
    private readonly Action<Exception> _onFault;
    private readonly Thread _flusher;

    // Guards the hand-over to the flusher (a Monitor: it sleeps on it): the file it flushes, how far the journal is
    // durable, the flush that waiters join and whether anyone joined it, and whether the flusher should stop.
    private readonly object _gate = new();
    private SafeFileHandle _file;
    private long _durable;
    private TaskCompletionSource _nextFlush = NewFlush();
    private bool _joined;
    private bool _closing;
    private Exception? _fault;

    // Written by the appender only (records count up to the one Append returns; bytes are where the next one goes).
    private long _written;
    private long _length;
    private long _fsyncs;

    private MetadataJournal(string path, SafeFileHandle file, Action<Exception> onFault)
    {
        _path = path;
        _file = file;
        _onFault = onFault;
        _flusher = new Thread(FlushLoop) { IsBackground = true, Name = "metadata-journal-flush" };
    }

    /// <summary>The journal's size in bytes.</summary>
    public long Length => _length;

    /// <summary>Records written since open (a rewrite keeps the count): pass it to <see cref="DurableAsync"/>.</summary>
    public long Written => _written;

    /// <summary>The fsyncs the flusher has run (open and rewrite not counted); for tests of group commit.</summary>
    public long FsyncCount => Interlocked.Read(ref _fsyncs);

    /// <summary>
    /// Opens (or creates) the journal at <paramref name="path"/> and hands every whole record's body to
    /// <paramref name="replay"/>, in order. <paramref name="onFault"/> is called once, from any thread, if the journal
    /// faults later. Throws <see cref="InvalidDataException"/> if the file is corrupt, and <see cref="IOException"/> if
    /// another process has it open.
    /// </summary>
    public static MetadataJournal Open(string path, Action<ReadOnlySpan<byte>> replay, Action<Exception> onFault)
    {
        var created = !File.Exists(path);
        var file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        try
        {
            if (created)
            {
                DurableFiles.FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            }

            var journal = new MetadataJournal(path, file, onFault);
            journal.Replay(replay);
            journal._flusher.Start();
            return journal;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes a record after the others and returns its number; it is durable once <see cref="DurableAsync"/> of that
    /// number completes. A failed write faults the journal (the next record would land after a partial one) and throws.
    /// </summary>
    public long Append(ReadOnlyMemory<byte> body)
    {
        ThrowIfFaulted();
        try
        {
            RandomAccess.Write(_file, [Header(body.Span), body], _length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fault(e);
            throw Faulted(e);
        }

        _length += HeaderSize + body.Length;
        Volatile.Write(ref _written, _written + 1);
        return _written;
    }

    /// <summary>Completes once the first <paramref name="records"/> records are on disk; throws if the journal faulted first.</summary>
    public Task DurableAsync(long records)
    {
        lock (_gate)
        {
            if (_durable >= records)
            {
                return Task.CompletedTask;
            }

            if (_fault is { } fault)
            {
                return Task.FromException(Faulted(fault));
            }

            _joined = true;
            Monitor.Pulse(_gate);
            return _nextFlush.Task;
        }
    }

    /// <summary>Throws the journal's fault, if it has one.</summary>
    public void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fault) is { } fault)
        {
            throw Faulted(fault);
        }
    }

    /// <summary>
    /// Writes <paramref name="bodies"/>, one record each, into a copy beside the journal and fsyncs it, on the thread
    /// pool: a snapshot of the state the journal holds up to byte <paramref name="from"/> (its <see cref="Length"/>
    /// when the snapshot was taken). It runs alongside appends, so the slow part of a compaction holds no lock; a
    /// failure throws and leaves the journal as it was. <see cref="CompleteRewriteAsync"/> puts the copy in place.
    /// </summary>
    public async Task<PreparedRewrite> PrepareRewriteAsync(IReadOnlyList<byte[]> bodies, long from)
    {
        var temp = _path + ".compact";
        await Task.Run(() =>
        {
            using var snapshot = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None);
            foreach (var body in bodies)
            {
                snapshot.Write(Header(body));
                snapshot.Write(body);
            }

            snapshot.Flush(flushToDisk: true);
        });
        return new PreparedRewrite(temp, from);
    }

    /// <summary>
    /// Replaces the journal by a prepared copy: first waits for every record written to be on disk (so the flusher is
    /// done with the old file; throws if that fails); then, on the thread pool, appends to the copy the records written
    /// since its snapshot, fsyncs it, renames it over the journal and fsyncs the directory. Only the records since the
    /// snapshot are written here, so this is quick. A failure faults the journal but does not throw: whichever file a
    /// crash leaves under the name holds every record acknowledged so far, but this process can no longer tell which
    /// one it would append to.
    /// </summary>
    public async Task CompleteRewriteAsync(PreparedRewrite prepared)
    {
        await DurableAsync(_written);
        var old = _file;
        var end = _length;
        SafeFileHandle rewritten;
        try
        {
            rewritten = await Task.Run(() =>
            {
                using (var copy = new FileStream(prepared.Path, FileMode.Append, FileAccess.Write, FileShare.None))
                {
                    var buffer = new byte[64 * 1024];
                    for (var at = prepared.From; at < end;)
                    {
                        var read = RandomAccess.Read(old, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - at)), at);
                        if (read == 0)
                        {
                            throw new IOException($"The journal {_path} ended at {at}, before its length {end}.");
                        }

                        copy.Write(buffer, 0, read);
                        at += read;
                    }

                    copy.Flush(flushToDisk: true);
                }

                old.Dispose();
                File.Move(prepared.Path, _path, overwrite: true);
                DurableFiles.FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
                return File.OpenHandle(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fault(e);
            return;
        }

        lock (_gate)
        {
            _file = rewritten;
        }

        _length = RandomAccess.GetLength(rewritten);
    }

    /// <summary>Stops the flusher and closes the file. Wait for <see cref="DurableAsync"/> of <see cref="Written"/> first.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _closing = true;
            Monitor.Pulse(_gate);
        }

        _file.Dispose();
    }

    private static TaskCompletionSource NewFlush() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static byte[] Header(ReadOnlySpan<byte> body)
    {
        var header = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)body.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), Crc32C.Compute(body));
        return header;
    }

    private IOException Faulted(Exception cause) =>
        new($"The metadata journal {_path} failed ({cause.Message}); the store stopped serving. Restart to replay the journal.", cause);

    /// <summary>
    /// The flusher: each round takes the waiters so far, fsyncs everything written up to then, and releases them; the
    /// writers that arrive during an fsync share the next one. It sleeps while nothing is written.
    /// </summary>
    private void FlushLoop()
    {
        while (true)
        {
            TaskCompletionSource batch;
            long target;
            SafeFileHandle file;
            lock (_gate)
            {
                while (_durable >= Volatile.Read(ref _written) || _fault is not null)
                {
                    if (_joined && _fault is null)
                    {
                        // Whoever joined since the last round saw only records already on disk.
                        _nextFlush.TrySetResult();
                        _nextFlush = NewFlush();
                        _joined = false;
                    }

                    if (_closing || _fault is not null)
                    {
                        return;
                    }

                    Monitor.Wait(_gate);
                }

                batch = _nextFlush;
                _nextFlush = NewFlush();
                _joined = false;
                target = Volatile.Read(ref _written);
                file = _file;
            }

            try
            {
                RandomAccess.FlushToDisk(file);
                Interlocked.Increment(ref _fsyncs);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                Fault(e);
                batch.TrySetException(Faulted(e));
                return;
            }

            lock (_gate)
            {
                _durable = target;
            }

            batch.TrySetResult();
        }
    }

    /// <summary>Records the first I/O error: the waiters get it, later calls throw it, and the owner is told.</summary>
    private void Fault(Exception cause)
    {
        TaskCompletionSource waiting;
        lock (_gate)
        {
            if (_fault is not null)
            {
                return;
            }

            _fault = cause;
            waiting = _nextFlush;
            Monitor.Pulse(_gate);
        }

        waiting.TrySetException(Faulted(cause));
        _onFault(cause);
    }

    private void Replay(Action<ReadOnlySpan<byte>> apply)
    {
        var bytes = new byte[RandomAccess.GetLength(_file)];
        for (var read = 0; read < bytes.Length;)
        {
            var n = RandomAccess.Read(_file, bytes.AsSpan(read), read);
            if (n == 0)
            {
                throw new IOException($"The metadata journal {_path} ended at {read} of {bytes.Length} bytes while it was read.");
            }

            read += n;
        }

        var position = 0;
        while (position + HeaderSize <= bytes.Length)
        {
            var bodyLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position));
            // Every body holds at least its operation count (u16): a shorter one is the start of a torn write.
            if (bodyLength < 2 || position + HeaderSize + bodyLength > bytes.Length)
            {
                break;
            }

            var body = bytes.AsSpan(position + HeaderSize, (int)bodyLength);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position + 4)) != Crc32C.Compute(body))
            {
                // A bad last record is a write cut short; a bad record with others after it is corruption.
                if (position + HeaderSize + bodyLength == bytes.Length)
                {
                    break;
                }

                throw new InvalidDataException(
                    $"The metadata journal {_path} is corrupt at offset {position} (checksum mismatch with {bytes.Length - position} bytes after it). " +
                    "Refusing to start rather than lose the records that follow; restore the file from a backup.");
            }

            apply(body);
            position += HeaderSize + (int)bodyLength;
        }

        // Anything after the last whole record is a write the crash cut short: it was never acknowledged.
        if (position < bytes.Length)
        {
            RandomAccess.SetLength(_file, position);
            RandomAccess.FlushToDisk(_file);
        }

        _length = position;
    }
}
