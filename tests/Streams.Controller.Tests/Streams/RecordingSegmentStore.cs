using System.Collections.Concurrent;
using Grpc.Core;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;

namespace Streams.Controller.Tests.Streams;

/// <summary>A segment store that records the controller's calls and keeps segment infos a test can change.</summary>
internal sealed class RecordingSegmentStore : ISegmentStoreAdmin
{
    public ConcurrentBag<string> Created { get; } = [];

    public ConcurrentBag<string> Sealed { get; } = [];

    public ConcurrentBag<string> Deleted { get; } = [];

    public bool FailCreates { get; set; }

    public ConcurrentDictionary<string, SegmentLoadSeed?> Seeds { get; } = new();

    public ConcurrentDictionary<string, List<WriterRecord>> Writers { get; } = new();

    public Task CreateSegmentAsync(string segment, CancellationToken cancellationToken, SegmentLoadSeed? seed = null)
    {
        if (FailCreates)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "segment store down"));
        }

        if (!Created.Contains(segment))
        {
            Created.Add(segment);
        }

        Seeds[segment] = seed;

        return Task.CompletedTask;
    }

    public ConcurrentDictionary<string, SegmentInfo> Infos { get; } = new();

    public Task<SegmentInfo> TruncateSegmentAsync(string segment, long offset, CancellationToken cancellationToken)
    {
        var info = Infos.GetOrAdd(segment, s => new SegmentInfo { Segment = s });
        info.StartOffset = offset;
        return Task.FromResult(info);
    }

    public Task<SegmentInfo> GetSegmentInfoAsync(string segment, CancellationToken cancellationToken) =>
        Task.FromResult(Infos.GetOrAdd(segment, s => new SegmentInfo { Segment = s }));

    public Task<SegmentInfo> SealSegmentAsync(string segment, CancellationToken cancellationToken)
    {
        Sealed.Add(segment);
        return Task.FromResult(new SegmentInfo { Segment = segment, Sealed = true });
    }

    public Task<WriterRecords> GetWriterRecordsAsync(string segment, CancellationToken cancellationToken)
    {
        var records = new WriterRecords { Segment = segment, Sealed = Sealed.Contains(segment) };
        if (Writers.TryGetValue(segment, out var writers))
        {
            records.Writers.AddRange(writers);
        }

        return Task.FromResult(records);
    }

    public Task InheritWriterRecordsAsync(string segment, IReadOnlyList<WriterRecord> writers, CancellationToken cancellationToken)
    {
        Writers[segment] = [.. writers];
        return Task.CompletedTask;
    }

    public Task DeleteSegmentAsync(string segment, CancellationToken cancellationToken)
    {
        Deleted.Add(segment);
        return Task.CompletedTask;
    }

    /// <summary>Each merge call: its target and sources, in the order received.</summary>
    public ConcurrentQueue<(string Target, string[] Sources)> Merges { get; } = new();

    /// <summary>Makes merges wait (a segment store that is away) until it is set to null.</summary>
    public TaskCompletionSource? HoldMerges { get; set; }

    public async Task<int> MergeSegmentsAsync(string target, IReadOnlyList<string> sources, CancellationToken cancellationToken)
    {
        if (HoldMerges is { } hold)
        {
            await hold.Task.WaitAsync(cancellationToken);
        }

        Merges.Enqueue((target, [.. sources]));
        return sources.Count;
    }

    /// <summary>Each merge of parts: its target and parts, in the order received.</summary>
    public ConcurrentQueue<(string Target, MergePart[] Parts)> PartMerges { get; } = new();

    public async Task<int> MergePartsAsync(string target, IReadOnlyList<MergePart> parts, CancellationToken cancellationToken)
    {
        if (HoldMerges is { } hold)
        {
            await hold.Task.WaitAsync(cancellationToken);
        }

        PartMerges.Enqueue((target, [.. parts]));
        return parts.Count;
    }

    /// <summary>What <see cref="ReadSealedAsync"/> answers for a segment (a test's transaction segment).</summary>
    public ConcurrentDictionary<string, byte[]> Contents { get; } = new();

    public Task<byte[]> ReadSealedAsync(string segment, CancellationToken cancellationToken) =>
        Contents.TryGetValue(segment, out var data) ? Task.FromResult(data) : throw new RpcException(new Status(StatusCode.NotFound, $"Segment {segment} does not exist."));
}

/// <summary>Every segment is served by one made-up address.</summary>
internal sealed class Locator : ISegmentLocator
{
    public SegmentEndpoint? Locate(string segment) => new() { Segment = segment, Host = "127.0.0.1", DataPort = 1 };
}
