namespace Streams.Tier2;

/// <summary>
/// Long-term storage of immutable chunks (Tier 2): named byte arrays written whole, read by range, listed by prefix.
/// <para>
/// Why chunks are immutable (written once, never appended to): S3 objects cannot be appended to, and a chunk that is
/// complete the moment its name appears can never be seen half-written — by a reader, a new container owner after a
/// crash, or a zombie owner. The storage writer therefore writes one chunk per flush of a segment; the segment's chunk
/// list (kept in the container's metadata) says which byte range each chunk holds.
/// </para>
/// <para>
/// Names are relative paths of segments separated by '/', each segment made of letters, digits and '-', '_', '.',
/// never "." or "..". A failure that may pass (server down, timeout, I/O error) throws
/// <see cref="ChunkStorageUnavailableException"/>; callers retry those with back-off.
/// </para>
/// </summary>
public interface IChunkStorage : IAsyncDisposable
{
    /// <summary>Where the chunks live, for messages (a directory, or s3://bucket/prefix).</summary>
    string Location { get; }

    /// <summary>Creates or replaces a chunk with <paramref name="data"/>. Completes once the chunk is durable and whole.</summary>
    Task WriteAsync(string name, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes from <paramref name="offset"/>; returns how many were read (fewer only
    /// at the chunk's end). Throws <see cref="ChunkNotFoundException"/> if the chunk does not exist.
    /// </summary>
    Task<int> ReadAsync(string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default);

    /// <summary>The chunk's length in bytes. Throws <see cref="ChunkNotFoundException"/> if it does not exist.</summary>
    Task<long> GetLengthAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Whether the chunk exists.</summary>
    Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Deletes a chunk; deleting a chunk that does not exist is not an error.</summary>
    Task DeleteAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Names of the chunks that start with <paramref name="prefix"/>, each once, fetched a page (or a directory) at a
    /// time as the caller enumerates, so listing millions of chunks does not hold them all in memory. The order is not
    /// part of the contract (the filesystem and S3 list in name order; some S3-compatible servers do not). The caller
    /// may delete chunks while enumerating; a chunk written or deleted during the listing may or may not appear.
    /// </summary>
    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default);
}

/// <summary>The chunk does not exist.</summary>
internal sealed class ChunkNotFoundException(string message) : Exception(message);

/// <summary>Tier 2 could not be reached or failed in a way that may pass; retry later.</summary>
public sealed class ChunkStorageUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Checks chunk names (<see cref="IChunkStorage"/>).</summary>
internal static class ChunkNames
{
    public static void Validate(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 900)
        {
            throw new ArgumentException($"A chunk name must have 1 to 900 characters, not {name?.Length ?? 0}.", nameof(name));
        }

        foreach (var part in name.Split('/'))
        {
            if (part.Length == 0 || part is "." or "..")
            {
                throw new ArgumentException($"Chunk name '{name}' has an empty, '.' or '..' path segment.", nameof(name));
            }

            foreach (var c in part)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                {
                    throw new ArgumentException($"Chunk name '{name}' has the character '{c}'; use letters, digits, '-', '_', '.' and '/'.", nameof(name));
                }
            }
        }
    }
}
