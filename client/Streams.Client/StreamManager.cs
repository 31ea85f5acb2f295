using Streams.Client.Internal;
using Streams.Contracts.Controller;

namespace Streams.Client;

/// <summary>Creates, describes, seals and deletes scopes and streams. Obtain it from <see cref="StreamsClient.Streams"/>.</summary>
public sealed class StreamManager
{
    private readonly ControllerClient _controller;

    internal StreamManager(ControllerClient controller)
    {
        _controller = controller;
    }

    /// <summary>Creates a scope; returns false if it already existed.</summary>
    public async Task<bool> CreateScopeAsync(string scope, CancellationToken cancellationToken = default) =>
        (await _controller.CallAsync((c, o) => c.CreateScopeAsync(new ScopeRequest { Scope = scope }, o), cancellationToken)).Created;

    /// <summary>Deletes an empty scope; returns false if it did not exist. Fails while it still has streams.</summary>
    public async Task<bool> DeleteScopeAsync(string scope, CancellationToken cancellationToken = default) =>
        (await _controller.CallAsync((c, o) => c.DeleteScopeAsync(new ScopeRequest { Scope = scope }, o), cancellationToken)).Deleted;

    /// <summary>All scopes, sorted.</summary>
    public async Task<IReadOnlyList<string>> ListScopesAsync(CancellationToken cancellationToken = default) =>
        [.. (await _controller.CallAsync((c, o) => c.ListScopesAsync(new ListScopesRequest(), o), cancellationToken)).Scopes];

    /// <summary>Creates a stream in an existing scope; returns false if it already existed (its configuration is unchanged).</summary>
    public async Task<bool> CreateStreamAsync(string scope, string stream, StreamConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var request = new CreateStreamRequest
        {
            Scope = scope,
            Stream = stream,
            Config = new StreamConfiguration
            {
                Scaling = ToContract(config.Scaling ?? ScalingPolicy.Fixed(config.SegmentCount)),
                Retention = ToContract(config.Retention),
            },
        };
        return (await _controller.CallAsync((c, o) => c.CreateStreamAsync(request, o), cancellationToken)).Created;
    }

    /// <summary>
    /// Changes how much data a stream keeps (null: keep everything from now on). Data already truncated stays gone; a
    /// shorter policy takes effect within one retention round of the controller.
    /// </summary>
    public async Task<StreamDescription> UpdateRetentionAsync(string scope, string stream, RetentionPolicy? retention, CancellationToken cancellationToken = default)
    {
        var request = new UpdateStreamRequest { Scope = scope, Stream = stream, Config = new StreamConfiguration { Retention = ToContract(retention) } };
        return Describe(await _controller.CallAsync((c, o) => c.UpdateStreamAsync(request, o), cancellationToken));
    }

    /// <summary>
    /// Changes how a stream's segment count is decided; its retention stays. A rate policy takes effect from the
    /// controller's next evaluation; a fixed count other than the current one rescales the stream now, to that many
    /// equal segments, and returns once the new epoch is active.
    /// </summary>
    public async Task<StreamDescription> UpdateScalingAsync(string scope, string stream, ScalingPolicy policy, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var current = await _controller.DescribeStreamAsync(scope, stream, cancellationToken);
        var request = new UpdateStreamRequest
        {
            Scope = scope,
            Stream = stream,
            Config = new StreamConfiguration { Scaling = ToContract(policy), Retention = current.Config?.Retention },
        };
        return Describe(await _controller.UpdateStreamAsync(request, cancellationToken));
    }

    /// <summary>
    /// Seals adjacent segments of the current epoch (by id, as <see cref="SegmentDescription.Id"/>) and replaces them
    /// with successors owning <paramref name="newRanges"/>, which must tile exactly the sealed segments' key ranges.
    /// Returns once the new epoch is active. Writers move to the successors in order; readers read the sealed segments
    /// to their ends first. Fails with a message saying what to change when the ranges do not tile, a segment is not in
    /// the current epoch, the stream is sealed, or another scale is in progress.
    /// </summary>
    public async Task<StreamDescription> ScaleStreamAsync(string scope, string stream, IReadOnlyList<long> sealSegmentIds, IReadOnlyList<(double Start, double End)> newRanges, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sealSegmentIds);
        ArgumentNullException.ThrowIfNull(newRanges);
        var request = new ScaleStreamRequest { Scope = scope, Stream = stream };
        request.SealSegmentIds.AddRange(sealSegmentIds);
        request.NewRanges.AddRange(newRanges.Select(r => new KeyRange { KeyStart = r.Start, KeyEnd = r.End }));
        return Describe(await _controller.ScaleStreamAsync(request, cancellationToken));
    }

    /// <summary>Describes a stream: its state, active segments, scaling policy, scale in progress and recent scales.</summary>
    public async Task<StreamDescription> DescribeStreamAsync(string scope, string stream, CancellationToken cancellationToken = default) =>
        Describe(await _controller.CallAsync((c, o) => c.DescribeStreamAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken));

    /// <summary>The streams of a scope, sorted.</summary>
    public async Task<IReadOnlyList<string>> ListStreamsAsync(string scope, CancellationToken cancellationToken = default) =>
        [.. (await _controller.CallAsync((c, o) => c.ListStreamsAsync(new ScopeRequest { Scope = scope }, o), cancellationToken)).Streams];

    /// <summary>Seals a stream: it accepts no more events, and readers end once they have read everything.</summary>
    public async Task<StreamDescription> SealStreamAsync(string scope, string stream, CancellationToken cancellationToken = default) =>
        Describe(await _controller.CallAsync((c, o) => c.SealStreamAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken));

    /// <summary>Deletes a sealed stream and its data; returns false if it did not exist.</summary>
    public async Task<bool> DeleteStreamAsync(string scope, string stream, CancellationToken cancellationToken = default) =>
        (await _controller.CallAsync((c, o) => c.DeleteStreamAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken)).Deleted;

    /// <summary>The stream's current tail: where every active segment ends now.</summary>
    public async Task<StreamCut> GetStreamCutAsync(string scope, string stream, CancellationToken cancellationToken = default) =>
        StreamCut.From(await _controller.CallAsync((c, o) => c.GetStreamCutAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken));

    /// <summary>
    /// Truncates a stream at a cut: data before it becomes unreadable and is deleted from Tier 2; readers starting
    /// from the beginning start at the cut. Truncation never moves back, so repeating it is harmless.
    /// </summary>
    public async Task TruncateStreamAsync(StreamCut cut, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cut);
        var request = cut.ToContract();
        await _controller.CallAsync((c, o) => c.TruncateStreamAsync(request, o), cancellationToken);
    }

    private static Contracts.Controller.RetentionPolicy? ToContract(RetentionPolicy? retention) => retention switch
    {
        { Time: { } time } => new Contracts.Controller.RetentionPolicy { TimeMs = (long)time.TotalMilliseconds },
        { SizeBytes: { } size } => new Contracts.Controller.RetentionPolicy { SizeBytes = size },
        { Consumption: { } c } => new Contracts.Controller.RetentionPolicy
        {
            Consumption = new Contracts.Controller.ConsumptionRetention
            {
                MinTimeMs = (long)(c.MinTime?.TotalMilliseconds ?? 0), MinSizeBytes = c.MinBytes ?? 0,
                MaxTimeMs = (long)(c.MaxTime?.TotalMilliseconds ?? 0), MaxSizeBytes = c.MaxBytes ?? 0,
            },
        },
        _ => null,
    };

    private static Contracts.Controller.ScalingPolicy ToContract(ScalingPolicy policy)
    {
        if (policy.Kind == ScalingKind.Fixed)
        {
            return new Contracts.Controller.ScalingPolicy { Fixed = new FixedScaling { SegmentCount = policy.SegmentCount } };
        }

        var rate = new RateScaling { TargetRate = policy.TargetRate, ScaleFactor = policy.ScaleFactor, MinSegments = policy.MinSegments, MaxSegments = policy.MaxSegments };
        return policy.Kind == ScalingKind.EventsPerSecond
            ? new Contracts.Controller.ScalingPolicy { EventsPerSecond = rate }
            : new Contracts.Controller.ScalingPolicy { KbytesPerSecond = rate };
    }

    private static ScalingPolicy FromContract(Contracts.Controller.ScalingPolicy? policy, int segments) => policy?.KindCase switch
    {
        Contracts.Controller.ScalingPolicy.KindOneofCase.EventsPerSecond => FromRate(ScalingPolicy.ByEventRate, policy.EventsPerSecond),
        Contracts.Controller.ScalingPolicy.KindOneofCase.KbytesPerSecond => FromRate(ScalingPolicy.ByKBytesRate, policy.KbytesPerSecond),
        Contracts.Controller.ScalingPolicy.KindOneofCase.Fixed when policy.Fixed.SegmentCount > 0 => ScalingPolicy.Fixed(policy.Fixed.SegmentCount),
        _ => ScalingPolicy.Fixed(Math.Max(1, segments)),
    };

    private static ScalingPolicy FromRate(Func<int, int, int, int, ScalingPolicy> make, RateScaling rate) =>
        make(Math.Max(1, rate.TargetRate), Math.Max(2, rate.ScaleFactor), Math.Max(1, rate.MinSegments), Math.Max(Math.Max(1, rate.MinSegments), rate.MaxSegments == 0 ? 64 : rate.MaxSegments));

    private static StreamDescription Describe(StreamInfo info) => new(
        info.Scope,
        info.Stream,
        info.Config?.Scaling?.Fixed?.SegmentCount ?? info.ActiveSegments.Count,
        info.State == StreamState.Sealed,
        info.Epoch,
        [.. info.ActiveSegments.Select(s => new SegmentDescription(s.Segment, s.SegmentId, s.KeyStart, s.KeyEnd))],
        DateTimeOffset.FromUnixTimeMilliseconds(info.CreatedAtUnixMs))
    {
        Retention = info.Config?.Retention switch
        {
            { KindCase: Contracts.Controller.RetentionPolicy.KindOneofCase.TimeMs } r => RetentionPolicy.ByTime(TimeSpan.FromMilliseconds(r.TimeMs)),
            { KindCase: Contracts.Controller.RetentionPolicy.KindOneofCase.SizeBytes } r => RetentionPolicy.BySize(r.SizeBytes),
            { KindCase: Contracts.Controller.RetentionPolicy.KindOneofCase.Consumption, Consumption: var c } => RetentionPolicy.FollowingConsumption(
                c.MinTimeMs > 0 ? TimeSpan.FromMilliseconds(c.MinTimeMs) : null, c.MinSizeBytes > 0 ? c.MinSizeBytes : null,
                c.MaxTimeMs > 0 ? TimeSpan.FromMilliseconds(c.MaxTimeMs) : null, c.MaxSizeBytes > 0 ? c.MaxSizeBytes : null),
            _ => null,
        },
        Scaling = FromContract(info.Config?.Scaling, info.ActiveSegments.Count),
        Transition = info.Transition is { } t
            ? new ScaleTransitionDescription(
                t.FromEpoch,
                t.Step,
                DateTimeOffset.FromUnixTimeMilliseconds(t.StartedAtUnixMs),
                TimeSpan.FromMilliseconds(Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - t.StepAtUnixMs)),
                [.. t.SealSegmentIds],
                [.. t.NewRanges.Select(r => (r.KeyStart, r.KeyEnd))],
                t.Reason)
            : null,
        History = [.. info.History.Select(h => new ScaleEventDescription(h.Epoch, DateTimeOffset.FromUnixTimeMilliseconds(h.TimeUnixMs), [.. h.SealedSegmentIds], [.. h.CreatedSegmentIds], h.Reason))],
        HotKeys = [.. info.HotKeys.Select(h => new HotKeyDescription(h.SegmentId, h.KeyStart, h.KeyEnd, h.Share))],
    };

    /// <summary>The stream's transactions: open, committing, and those finished recently.</summary>
    public async Task<IReadOnlyList<Transactions.TransactionDescription>> ListTransactionsAsync(string scope, string stream, CancellationToken cancellationToken = default) =>
        [.. (await _controller.CallTransactionsAsync((c, o) => c.ListTransactionsAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken))
            .Transactions.Select(Transactions.TransactionDescription.From)];

    /// <summary>One transaction; <see cref="StreamsException"/> NOT_FOUND if the controller does not know it (any more).</summary>
    public async Task<Transactions.TransactionDescription> GetTransactionAsync(string scope, string stream, string transactionId, CancellationToken cancellationToken = default) =>
        Transactions.TransactionDescription.From(await _controller.CallTransactionsAsync(
            (c, o) => c.GetTransactionAsync(new TransactionRef { Scope = scope, Stream = stream, TransactionId = transactionId }, o), cancellationToken));

    /// <summary>Aborts an open transaction (FAILED_PRECONDITION once it commits); nothing of it becomes visible.</summary>
    public async Task<Transactions.TransactionDescription> AbortTransactionAsync(string scope, string stream, string transactionId, CancellationToken cancellationToken = default) =>
        Transactions.TransactionDescription.From(await _controller.CallTransactionsAsync(
            (c, o) => c.AbortTransactionAsync(new TransactionRef { Scope = scope, Stream = stream, TransactionId = transactionId }, o), cancellationToken));
}
