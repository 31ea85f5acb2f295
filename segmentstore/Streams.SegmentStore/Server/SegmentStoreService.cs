using System.Text.Json;
using Microsoft.Extensions.Logging;
using Streams.Common.Naming;
using Streams.Common.Resilience;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Reading;
using Streams.Tier2;

namespace Streams.SegmentStore.Server;

/// <summary>
/// Hosts this segment store's containers and routes each segment to its container. A container that fails
/// (its log failed or was fenced) is restarted, which recovers it from its log; while it restarts its segments
/// answer "unavailable, retry".
/// <para>
/// One container, one copy. Each container has a <see cref="ContainerSlot"/>: a copy is claimed in it before its
/// recovery starts and leaves it only once disposed, so the ownership loop, a restart and a stop never make two copies
/// of a container in this process (two copies would fence each other's ledgers in turn).
/// </para>
/// <para>
/// Starting only against fresh ownership. Every decision to start a container rests on a view of its ownership (the
/// controller's assignment) read at some moment; <see cref="CurrentView"/> numbers those moments, and every loss of
/// a container (it failed, it was stopped, the metadata session was lost) takes the next number. A start is refused
/// when its view was taken before the container's last loss: a store that lost a container because someone else owns
/// it now must read the assignment again before it takes the container back, or it would fence the real owner. A
/// failed container is restarted only after <see cref="ConfirmOwnershipAsync"/> read, after the failure, that this
/// store still owns it. <see cref="StopAllAsync"/> (session lost) stops every copy started against an older view,
/// recovering ones included.
/// </para>
/// </summary>
public sealed class SegmentStoreService : IAsyncDisposable
{
    /// <summary>
    /// Version of the on-disk layout: 2 = container logs on ledgers; 3 = segments placed on containers by
    /// scope/stream/number without the epoch (docs/routing-keys.md), which moved segments of later epochs.
    /// </summary>
    private const int LayoutFormat = 3;

    /// <summary>
    /// A failed container's log is usually back within moments (a bookie restarted): retry soon, but never more
    /// often than every 10 s while it keeps failing.
    /// </summary>
    private static readonly RetryOptions RestartRetry = new() { FirstDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(10) };

    private readonly SegmentStoreOptions _options;
    private readonly Func<int, IDurableDataLog> _logFactory;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly ContainerSlot[] _slots;
    private readonly CancellationTokenSource _stop = new();
    private readonly IChunkStorage? _tier2;
    private readonly ISegmentLoadSink? _loadSink;
    private readonly ContainerOptions _containerOptions;
    private long _views;

    /// <param name="options">Settings.</param>
    /// <param name="logFactory">Opens a container's durable log (Tier 1).</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="tier2">Long-term storage shared by every segment store of the cluster; null keeps all data in Tier 1.</param>
    /// <param name="loadSink">Where the containers send load reports (the leading controller); null sends none.</param>
    /// <param name="load">How load is measured and reported (section "Scaling"); null takes the defaults.</param>
    public SegmentStoreService(
        SegmentStoreOptions options, Func<int, IDurableDataLog> logFactory, ILoggerFactory loggerFactory, IChunkStorage? tier2 = null,
        ISegmentLoadSink? loadSink = null, Load.SegmentLoadOptions? load = null)
    {
        _tier2 = tier2;
        _loadSink = loadSink;
        options.Validate();
        _containerOptions = options.ToContainerOptions() with { Load = load ?? new() };
        _containerOptions.Validate();
        _options = options;
        _logFactory = logFactory;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<SegmentStoreService>();
        _slots = new ContainerSlot[options.ContainerCount];
        for (var id = 0; id < _slots.Length; id++)
        {
            _slots[id] = new ContainerSlot();
        }

        Cache = new FrameCache(options.CacheSize.Bytes);
        ChunkCache = new ChunkCache(options.Tier2CacheSize.Bytes);
    }

    public FrameCache Cache { get; }

    /// <summary>Chunks read back from Tier 2.</summary>
    public ChunkCache ChunkCache { get; }

    /// <summary>Tier 2, if the store has one.</summary>
    public IChunkStorage? Tier2 => _tier2;

    /// <summary>Bytes accepted by this store's containers and not yet in Tier 2.</summary>
    public long UnflushedBytes => RunningContainers.Sum(c => c.UnflushedBytes);

    public int ContainerCount => _slots.Length;

    public SegmentStoreOptions Options => _options;

    /// <summary>This store's name in load reports (cluster: its registration id).</summary>
    public string Name { get; init; } = "standalone";

    /// <summary>
    /// The current ownership view: take it <em>before</em> reading the assignment, and pass it to
    /// <see cref="StartOwnedAsync"/> with what that read said.
    /// </summary>
    public long CurrentView => Interlocked.Read(ref _views);

    /// <summary>
    /// Reads, now, whether this store owns a container (cluster: the controller's assignment); a failed container is
    /// restarted only if this says so after the failure. Standalone owns them all.
    /// </summary>
    public Func<int, CancellationToken, Task<bool>> ConfirmOwnershipAsync { get; set; } = static (_, _) => Task.FromResult(true);

    /// <summary>Starts every container (standalone: this store owns them all) and recovers them in parallel.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        CheckContainerCount();
        var view = CurrentView;
        await Task.WhenAll(Enumerable.Range(0, _slots.Length).Select(id => StartOwnedAsync(id, view, cancellationToken)));
    }

    /// <summary>Whether a copy of a container is here now: starting, recovering or running.</summary>
    public bool IsRunning(int id) => _slots[id].Container is { State: ContainerState.Created or ContainerState.Recovering or ContainerState.Running };

    /// <summary>Whether a container is recovered and serves here now.</summary>
    public bool IsServing(int id) => _slots[id].Container is { State: ContainerState.Running };

    /// <summary>
    /// Starts a container this store owns per ownership read at <paramref name="view"/>: it claims the container's
    /// slot, then recovers the log, fencing the previous owner. Returns true if a copy is here (this one, or one that
    /// was already), false if the start was refused (the container was lost after <paramref name="view"/>: read the
    /// ownership again) or the copy was stopped while it recovered. Throws if the recovery failed.
    /// </summary>
    public async Task<bool> StartOwnedAsync(int id, long view, CancellationToken cancellationToken = default)
    {
        var slot = _slots[id];
        SegmentContainer container;
        await slot.Gate.WaitAsync(cancellationToken);
        try
        {
            if (slot.Container is not null)
            {
                return true; // one copy: a failed one is its supervisor's to restart
            }

            if (view < slot.LostAt)
            {
                _logger.LogInformation("Not starting container {Container}: its ownership was read before this store last lost it.", id);
                return false;
            }

            container = new SegmentContainer(id, _logFactory(id), Cache, _containerOptions, _loggerFactory.CreateLogger($"Streams.SegmentStore.Container{id}"), _tier2, ChunkCache,
                _loadSink, Name);
            slot.Container = container;
            slot.ClaimedAt = view;
        }
        finally
        {
            slot.Gate.Release();
        }

        _logger.LogInformation("Starting container {Container}.", id);
        try
        {
            await container.StartAsync(cancellationToken);
        }
        catch (Exception e)
        {
            if (!await ReleaseAsync(slot, container) && e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return false; // stopped while it recovered
            }

            throw;
        }

        slot.Supervisor = SuperviseAsync(slot, container);
        return true;
    }

    /// <summary>Stops a container this store no longer owns (also while it recovers); its clients are told to retry (elsewhere).</summary>
    public Task StopAsync(int id) =>
        StopCopyAsync(_slots[id], static _ => true, _ => Interlocked.Increment(ref _views), "no longer owned by this store");

    /// <summary>
    /// This store may own nothing any more (its metadata session was lost): stops every copy started against ownership
    /// read before now, recovering ones included, and refuses starts against such ownership.
    /// </summary>
    public async Task StopAllAsync()
    {
        var lost = Interlocked.Increment(ref _views);
        await Task.WhenAll(_slots.Select(slot => StopCopyAsync(slot, _ => slot.ClaimedAt < lost, _ => lost)));
    }

    /// <summary>The task watching container <paramref name="id"/>'s current copy (for tests: it ends with the copy).</summary>
    internal Task SupervisorOf(int id) => _slots[id].Supervisor;

    /// <summary>The running container that owns <paramref name="segmentName"/>, or an outcome saying why there is none.</summary>
    public SegmentContainer? ContainerFor(string segmentName, out OperationOutcome error)
    {
        var id = ContainerMapper.ContainerOf(segmentName, _slots.Length);
        var container = _slots[id].Container;
        if (container is null || container.State != ContainerState.Running)
        {
            error = OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, $"Container {id} (owner of {segmentName}) is not ready yet; retry.");
            return null;
        }

        error = default;
        return container;
    }

    /// <summary>
    /// <see cref="ContainerFor"/>, but when this store has claimed the container and is still recovering it, waits for it
    /// to serve (up to <see cref="StartingWait"/>), so a client that found the new owner before its recovery ended is
    /// answered the moment it serves rather than sent away to back off. Completes at once otherwise.
    /// </summary>
    public ValueTask<(SegmentContainer? Container, OperationOutcome Error)> ContainerForAsync(string segmentName, CancellationToken cancellationToken)
    {
        if (_slots[ContainerMapper.ContainerOf(segmentName, _slots.Length)].Container is { State: ContainerState.Created or ContainerState.Recovering } starting)
        {
            return WaitForServingAsync(segmentName, starting, cancellationToken);
        }

        var container = ContainerFor(segmentName, out var error);
        return ValueTask.FromResult((container, error));
    }

    /// <summary>How long a request waits for a container this store is recovering before it is told to retry.</summary>
    public static readonly TimeSpan StartingWait = TimeSpan.FromSeconds(10);

    private async ValueTask<(SegmentContainer?, OperationOutcome)> WaitForServingAsync(string segmentName, SegmentContainer starting, CancellationToken cancellationToken)
    {
        try
        {
            await starting.Serving.WaitAsync(StartingWait, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Still recovering: ContainerFor says to retry.
        }

        var container = ContainerFor(segmentName, out var error);
        return (container, error);
    }

    public IEnumerable<SegmentContainer> RunningContainers =>
        _slots.Select(s => s.Container).Where(c => c is { State: ContainerState.Running }).Select(c => c!);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_slots.Select(s => s.Supervisor));
        foreach (var slot in _slots)
        {
            await StopCopyAsync(slot, static _ => true, static _ => null);
        }

        _stop.Dispose();
        if (_tier2 is not null)
        {
            await _tier2.DisposeAsync();
        }
    }

    /// <summary>Disposes a copy that failed (to start, or later) and empties its slot; false if it was no longer there (stopped).</summary>
    private Task<bool> ReleaseAsync(ContainerSlot slot, SegmentContainer container) =>
        StopCopyAsync(slot, copy => copy == container, stopping => stopping ? Interlocked.Increment(ref _views) : null);

    /// <summary>
    /// Stops the copy in a slot, under its gate: disposes it and empties the slot if <paramref name="stops"/> says so,
    /// and records the loss <paramref name="lostAt"/> returns (told whether a copy is being stopped; null records
    /// none), so that starts against ownership read before it are refused. Returns whether a copy was stopped.
    /// </summary>
    private async Task<bool> StopCopyAsync(ContainerSlot slot, Func<SegmentContainer, bool> stops, Func<bool, long?> lostAt, string? reason = null)
    {
        await slot.Gate.WaitAsync();
        try
        {
            var container = slot.Container;
            var stopping = container is not null && stops(container);
            if (lostAt(stopping) is { } lost)
            {
                slot.LostAt = Math.Max(slot.LostAt, lost);
            }

            if (container is null || !stopping)
            {
                return false;
            }

            if (reason is not null)
            {
                _logger.LogInformation("Stopping container {Container}: {Reason}.", container.Id, reason);
            }

            await container.DisposeAsync();
            slot.Container = null;
            return true;
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>
    /// Restarts a container when it fails, with back-off while restarts keep failing, and only while ownership read
    /// after the failure says this store still owns it.
    /// </summary>
    private async Task SuperviseAsync(ContainerSlot slot, SegmentContainer container)
    {
        try
        {
            // Ends with the copy, so a stopped copy leaves no waiting supervisor behind.
            await Task.WhenAny(container.Failed, container.Disposed).WaitAsync(_stop.Token);
            if (!container.Failed.IsCompleted || !await ReleaseAsync(slot, container))
            {
                return; // already stopped by its owner
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var id = container.Id;
        _logger.LogWarning("Container {Container} failed ({Error}); restarting it if this store still owns it.", id, container.Failure?.Message);
        await RetryLoop.UntilSuccessAsync($"Restarting container {id}", async token =>
        {
            var view = CurrentView;
            if (!await ConfirmOwnershipAsync(id, token))
            {
                _logger.LogInformation("Container {Container} is no longer assigned to this store: not restarting it.", id);
                return;
            }

            if (!await StartOwnedAsync(id, view, token))
            {
                throw new InvalidOperationException($"Container {id} was lost again while its ownership was read; reading it again.");
            }
        }, _logger, RestartRetry, _stop.Token);
    }

    /// <summary>
    /// The container count decides where every segment lives, so it must never change under existing data. It is
    /// recorded next to the data (with the layout's format version) on first start and checked on every start after.
    /// </summary>
    private void CheckContainerCount()
    {
        Directory.CreateDirectory(_options.DataDirectory);
        var path = Path.Combine(_options.DataDirectory, "layout.json");
        if (File.Exists(path))
        {
            var recorded = JsonSerializer.Deserialize<JsonElement>(File.ReadAllText(path));
            var format = recorded.ValueKind == JsonValueKind.Object && recorded.TryGetProperty("format", out var f) ? f.GetInt32() : 1;
            if (format == 2)
            {
                throw new InvalidOperationException(
                    $"The data in {_options.DataDirectory} was written by an older version of Streams that placed segments on containers by their epoch-qualified names (layout 2); " +
                    "this version places them by scope/stream/number (layout 3) and would look for them in other containers. Start with an empty data directory.");
            }

            if (format != LayoutFormat)
            {
                throw new InvalidOperationException(
                    $"The data in {_options.DataDirectory} was written by an older version of Streams (per-container FASTER logs), which this version cannot read. " +
                    "Start with an empty data directory.");
            }

            var count = recorded.GetProperty("containerCount").GetInt32();
            if (count != _options.ContainerCount)
            {
                throw new InvalidOperationException(
                    $"The data in {_options.DataDirectory} was written with {count} containers; this store is configured with {_options.ContainerCount}. " +
                    $"Set SegmentStore:ContainerCount to {count}.");
            }

            return;
        }

        Common.Storage.DurableFiles.WriteAtomically(path, JsonSerializer.SerializeToUtf8Bytes(new { format = LayoutFormat, containerCount = _options.ContainerCount }));
    }

}
