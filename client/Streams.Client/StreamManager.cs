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
                Scaling = new ScalingPolicy { Fixed = new FixedScaling { SegmentCount = config.SegmentCount } },
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

    /// <summary>Describes a stream: its state and its active segments.</summary>
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
    public async Task<StreamCut> GetStreamCutAsync(string scope, string stream, CancellationToken cancellationToken = default)
    {
        var cut = await _controller.CallAsync((c, o) => c.GetStreamCutAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);
        return new StreamCut(cut.Scope, cut.Stream, cut.Positions.ToDictionary(p => p.Key, p => p.Value));
    }

    /// <summary>
    /// Truncates a stream at a cut: data before it becomes unreadable and is deleted from Tier 2; readers starting
    /// from the beginning start at the cut. Truncation never moves back, so repeating it is harmless.
    /// </summary>
    public async Task TruncateStreamAsync(StreamCut cut, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cut);
        var request = new Contracts.Controller.StreamCut { Scope = cut.Scope, Stream = cut.Stream };
        foreach (var (segment, offset) in cut.Positions)
        {
            request.Positions[segment] = offset;
        }
        await _controller.CallAsync((c, o) => c.TruncateStreamAsync(request, o), cancellationToken);
    }

    private static Contracts.Controller.RetentionPolicy? ToContract(RetentionPolicy? retention) => retention switch
    {
        { Time: { } time } => new Contracts.Controller.RetentionPolicy { TimeMs = (long)time.TotalMilliseconds },
        { SizeBytes: { } size } => new Contracts.Controller.RetentionPolicy { SizeBytes = size },
        _ => null,
    };

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
            _ => null,
        },
    };
}
