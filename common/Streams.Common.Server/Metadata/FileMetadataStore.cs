using System.Buffers.Binary;
using System.Text;
using Streams.Common.Server.Storage;

namespace Streams.Common.Server.Metadata;

/// <summary>
/// The embedded metadata store of <c>streams standalone</c>: an in-memory map made durable by an append-only
/// journal in one file. Each mutation appends one record and fsyncs before it completes. A record is
/// <c>length u32 | crc32c u32 | op u8 | version i64 | pathLength u16 | path | data</c>; on open the journal is
/// replayed up to the first record that is torn or fails its checksum (a write cut short by a crash, which was
/// never acknowledged) and the file is cut there. When the journal grows past four times the live data it is
/// rewritten as a snapshot (write, fsync, rename, fsync the directory).
/// </summary>
internal sealed class FileMetadataStore : IMetadataStore
{
    private const byte OpPut = 1;
    private const byte OpDelete = 2;
    private const int RecordHeaderSize = 8;

    private readonly string _path;
    private readonly SortedDictionary<string, VersionedValue> _values = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private FileStream _journal;
    private long _liveBytes;

    private FileMetadataStore(string path, FileStream journal)
    {
        _path = path;
        _journal = journal;
    }

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

    public async ValueTask<VersionedValue?> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            return _values.TryGetValue(path, out var value) ? value with { Data = value.Data.ToArray() } : null;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (_values.ContainsKey(path))
            {
                return false;
            }

            Put(path, data.ToArray(), 0);
            return true;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<long?> TrySetAsync(string path, ReadOnlyMemory<byte> data, long expectedVersion, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!_values.TryGetValue(path, out var current) || (expectedVersion != -1 && current.Version != expectedVersion))
            {
                return null;
            }

            Put(path, data.ToArray(), current.Version + 1);
            return current.Version + 1;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<bool> TryDeleteAsync(string path, long expectedVersion = -1, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!_values.TryGetValue(path, out var current) || (expectedVersion != -1 && current.Version != expectedVersion))
            {
                return false;
            }

            Append(OpDelete, path, current.Version, ReadOnlySpan<byte>.Empty);
            _values.Remove(path);
            _liveBytes -= RecordSize(path, current.Data.Length);
            return true;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask<IReadOnlyList<string>> GetChildrenAsync(string path, CancellationToken cancellationToken = default)
    {
        MetadataPaths.Validate(path);
        var prefix = path == "/" ? "/" : path + "/";
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var children = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var key in _values.Keys)
            {
                if (key.Length > prefix.Length && key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    var rest = key.AsSpan(prefix.Length);
                    var slash = rest.IndexOf('/');
                    children.Add((slash < 0 ? rest : rest[..slash]).ToString());
                }
            }

            return [.. children];
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _lock.WaitAsync();
        await _journal.DisposeAsync();
        _lock.Dispose();
    }

    private void Put(string path, byte[] data, long version)
    {
        Append(OpPut, path, version, data);
        if (_values.TryGetValue(path, out var old))
        {
            _liveBytes -= RecordSize(path, old.Data.Length);
        }

        _values[path] = new VersionedValue(data, version);
        _liveBytes += RecordSize(path, data.Length);
        if (_journal.Length > (4 * _liveBytes) + (1024 * 1024))
        {
            Compact();
        }
    }

    private static int RecordSize(string path, int dataLength) => RecordHeaderSize + 1 + 8 + 2 + Encoding.UTF8.GetByteCount(path) + dataLength;

    private void Append(byte op, string path, long version, ReadOnlySpan<byte> data)
    {
        var record = Encode(op, path, version, data);
        _journal.Seek(0, SeekOrigin.End);
        _journal.Write(record);
        _journal.Flush(flushToDisk: true);
    }

    private static byte[] Encode(byte op, string path, long version, ReadOnlySpan<byte> data)
    {
        var pathBytes = Encoding.UTF8.GetBytes(path);
        var bodyLength = 1 + 8 + 2 + pathBytes.Length + data.Length;
        var record = new byte[RecordHeaderSize + bodyLength];
        var body = record.AsSpan(RecordHeaderSize);
        body[0] = op;
        BinaryPrimitives.WriteInt64LittleEndian(body[1..], version);
        BinaryPrimitives.WriteUInt16LittleEndian(body[9..], (ushort)pathBytes.Length);
        pathBytes.CopyTo(body[11..]);
        data.CopyTo(body[(11 + pathBytes.Length)..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)bodyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), Crc32C.Compute(body));
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
            if (bodyLength < 11 || position + RecordHeaderSize + bodyLength > bytes.Length)
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

            var version = BinaryPrimitives.ReadInt64LittleEndian(body[1..]);
            var pathLength = BinaryPrimitives.ReadUInt16LittleEndian(body[9..]);
            var path = Encoding.UTF8.GetString(body.Slice(11, pathLength));
            var data = body[(11 + pathLength)..].ToArray();
            if (body[0] == OpPut)
            {
                _values[path] = new VersionedValue(data, version);
            }
            else
            {
                _values.Remove(path);
            }

            position += RecordHeaderSize + (int)bodyLength;
        }

        // Anything after the last whole record is a write the crash cut short: it was never acknowledged.
        if (position < bytes.Length)
        {
            _journal.SetLength(position);
            _journal.Flush(flushToDisk: true);
        }

        _liveBytes = _values.Sum(p => (long)RecordSize(p.Key, p.Value.Data.Length));
    }

    private void Compact()
    {
        var temp = _path + ".compact";
        using (var snapshot = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var (path, value) in _values)
            {
                snapshot.Write(Encode(OpPut, path, value.Version, value.Data));
            }

            snapshot.Flush(flushToDisk: true);
        }

        _journal.Dispose();
        File.Move(temp, _path, overwrite: true);
        DurableFiles.FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
        _journal = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
    }
}
