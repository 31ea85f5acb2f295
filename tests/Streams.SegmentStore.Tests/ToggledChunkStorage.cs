using Streams.Tier2;

namespace Streams.SegmentStore.Tests;

/// <summary>A Tier 2 that can be switched off (as a server going down) and counts reads.</summary>
internal sealed class ToggledChunkStorage(IChunkStorage inner) : IChunkStorage
{
    private int _reads;

    public volatile bool Down;

    public int Reads => Volatile.Read(ref _reads);

    public string Location => inner.Location;

    public Task WriteAsync(string name, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : inner.WriteAsync(name, data, cancellationToken);

    /// <summary>How long each read takes before it starts (a slow Tier 2).</summary>
    public TimeSpan ReadDelay { get; set; }

    public async Task<int> ReadAsync(string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _reads);
        await Task.Delay(ReadDelay, cancellationToken);
        return Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : await inner.ReadAsync(name, offset, buffer, cancellationToken);
    }

    public Task<long> GetLengthAsync(string name, CancellationToken cancellationToken = default) => inner.GetLengthAsync(name, cancellationToken);

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) => inner.ExistsAsync(name, cancellationToken);

    public Task DeleteAsync(string name, CancellationToken cancellationToken = default) =>
        Down ? throw new ChunkStorageUnavailableException("Tier 2 is down (test).") : inner.DeleteAsync(name, cancellationToken);

    public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
