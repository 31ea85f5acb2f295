using System.Collections.Concurrent;
using System.Text.Json;
using Streams.Coordination.Metadata;

namespace Streams.Controller.Streams;

/// <summary>Scopes and streams on top of an <see cref="IMetadataStore"/>, with versions for compare-and-set updates.</summary>
public sealed class StreamMetadataStore
{
    private const string ScopesRoot = "/scopes";
    private const string RetentionRoot = "/retention";

    private readonly IMetadataStore _store;

    /// <summary>The last stream record parsed for each stream path, with the bytes it was parsed from (one per stream).</summary>
    private readonly ConcurrentDictionary<string, (byte[] Data, StreamRecord Record)> _parsed = new();

    public StreamMetadataStore(IMetadataStore store)
    {
        _store = store;
    }

    public static string ScopePath(string scope) => $"{ScopesRoot}/{scope}";

    public static string StreamsPath(string scope) => $"{ScopesRoot}/{scope}/streams";

    public static string StreamPath(string scope, string stream) => $"{ScopesRoot}/{scope}/streams/{stream}";

    public static string RetentionPath(string scope, string stream) => $"{RetentionRoot}/{scope}/{stream}";

    public ValueTask<bool> CreateScopeAsync(string scope, CancellationToken cancellationToken) =>
        _store.TryCreateAsync(ScopePath(scope), JsonSerializer.SerializeToUtf8Bytes(new ScopeRecord(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ControllerJsonContext.Default.ScopeRecord), cancellationToken);

    public async ValueTask<bool> ScopeExistsAsync(string scope, CancellationToken cancellationToken) =>
        await _store.GetAsync(ScopePath(scope), cancellationToken) is not null;

    public ValueTask<bool> DeleteScopeAsync(string scope, CancellationToken cancellationToken) =>
        _store.TryDeleteAsync(ScopePath(scope), -1, cancellationToken);

    public async ValueTask<IReadOnlyList<string>> ListScopesAsync(CancellationToken cancellationToken) =>
        await _store.GetChildrenAsync(ScopesRoot, cancellationToken);

    public async ValueTask<IReadOnlyList<string>> ListStreamsAsync(string scope, CancellationToken cancellationToken) =>
        await _store.GetChildrenAsync(StreamsPath(scope), cancellationToken);

    public async ValueTask<(StreamRecord Record, long Version)?> GetStreamAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var path = StreamPath(scope, stream);
        var value = await _store.GetAsync(path, cancellationToken);
        if (value is not { } v)
        {
            _parsed.TryRemove(path, out _);
            return null;
        }

        // A writer of a 1,000-segment stream asks for the endpoint of each segment, and each question read the stream
        // record: parsing its JSON (about 100 bytes a segment) was most of the controller's CPU. The record is parsed
        // again only when its bytes changed; comparing them costs a small fraction of parsing them. Records are
        // immutable, so every caller can share the parsed one.
        if (_parsed.TryGetValue(path, out var cached) && (ReferenceEquals(cached.Data, v.Data) || cached.Data.AsSpan().SequenceEqual(v.Data)))
        {
            return (cached.Record, v.Version);
        }

        var record = JsonSerializer.Deserialize(v.Data, ControllerJsonContext.Default.StreamRecord)!;
        _parsed[path] = (v.Data, record);
        return (record, v.Version);
    }

    public ValueTask<bool> CreateStreamAsync(StreamRecord record, CancellationToken cancellationToken) =>
        _store.TryCreateAsync(StreamPath(record.Scope, record.Stream), Serialize(record), cancellationToken);

    /// <summary>Replaces the record if it is still at <paramref name="expectedVersion"/>; returns the new version or null.</summary>
    public ValueTask<long?> UpdateStreamAsync(StreamRecord record, long expectedVersion, CancellationToken cancellationToken) =>
        _store.TrySetAsync(StreamPath(record.Scope, record.Stream), Serialize(record), expectedVersion, cancellationToken);

    public async ValueTask<bool> DeleteStreamAsync(string scope, string stream, long expectedVersion, CancellationToken cancellationToken)
    {
        var deleted = await _store.TryDeleteAsync(StreamPath(scope, stream), expectedVersion, cancellationToken);
        if (deleted)
        {
            _parsed.TryRemove(StreamPath(scope, stream), out _);
        }

        return deleted;
    }

    public async ValueTask<(RetentionRecord Record, long Version)?> GetRetentionAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var value = await _store.GetAsync(RetentionPath(scope, stream), cancellationToken);
        return value is { } v ? (JsonSerializer.Deserialize(v.Data, ControllerJsonContext.Default.RetentionRecord)!, v.Version) : null;
    }

    /// <summary>
    /// Stores the retention cuts: creates them when <paramref name="expectedVersion"/> is null, otherwise replaces them if
    /// still at that version. Returns the new version, or null when someone else changed them first.
    /// </summary>
    public async ValueTask<long?> SaveRetentionAsync(string scope, string stream, RetentionRecord record, long? expectedVersion, CancellationToken cancellationToken)
    {
        var data = JsonSerializer.SerializeToUtf8Bytes(record, ControllerJsonContext.Default.RetentionRecord);
        if (expectedVersion is { } version)
        {
            return await _store.TrySetAsync(RetentionPath(scope, stream), data, version, cancellationToken);
        }

        return await _store.TryCreateAsync(RetentionPath(scope, stream), data, cancellationToken) ? 0 : null;
    }

    public ValueTask<bool> DeleteRetentionAsync(string scope, string stream, CancellationToken cancellationToken) =>
        _store.TryDeleteAsync(RetentionPath(scope, stream), -1, cancellationToken);

    /// <summary>
    /// Transactions committing now into one of <paramref name="segments"/> (all of the stream's if null;
    /// Transactions/TransactionService.cs): a scale or a seal waits for them.
    /// </summary>
    public ValueTask<int> CommittingTransactionsAsync(string scope, string stream, IReadOnlySet<long>? segments, CancellationToken cancellationToken) =>
        segments is null
            ? Transactions.TransactionService.CommittingCountAsync(_store, scope, stream, cancellationToken)
            : Transactions.TransactionService.CommittingIntoAsync(_store, scope, stream, segments, cancellationToken);

    /// <summary>Forgets the transactions of a stream being deleted (their segments go with the stream's).</summary>
    public Task ForgetTransactionsAsync(string scope, string stream, Func<string, Task> deleteSegment, CancellationToken cancellationToken) =>
        Transactions.TransactionService.ForgetStreamAsync(_store, scope, stream, deleteSegment, cancellationToken);

    private static byte[] Serialize(StreamRecord record) => JsonSerializer.SerializeToUtf8Bytes(record, ControllerJsonContext.Default.StreamRecord);
}
