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
/// </summary>
public sealed class SegmentStoreService : IAsyncDisposable
{
    /// <summary>Version of the on-disk layout: 2 = container logs on ledgers.</summary>
    private const int LayoutFormat = 2;

    /// <summary>
    /// A failed container's log is usually back within moments (a bookie restarted): retry soon, but never more
    /// often than every 10 s while it keeps failing.
    /// </summary>
    private static readonly RetryOptions RestartRetry = new() { FirstDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(10) };

    private readonly SegmentStoreOptions _options;
    private readonly Func<int, IDurableDataLog> _logFactory;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly SegmentContainer?[] _containers;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _supervisors = [];
    private readonly IChunkStorage? _tier2;

    private Func<int, bool> _owns = _ => true;

    /// <param name="options">Settings.</param>
    /// <param name="logFactory">Opens a container's durable log (Tier 1).</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="tier2">Long-term storage shared by every segment store of the cluster; null keeps all data in Tier 1.</param>
    public SegmentStoreService(SegmentStoreOptions options, Func<int, IDurableDataLog> logFactory, ILoggerFactory loggerFactory, IChunkStorage? tier2 = null)
    {
        _tier2 = tier2;
        options.Validate();
        _options = options;
        _logFactory = logFactory;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<SegmentStoreService>();
        _containers = new SegmentContainer?[options.ContainerCount];
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

    public int ContainerCount => _containers.Length;

    public SegmentStoreOptions Options => _options;

    /// <summary>
    /// Decides whether a failed container is restarted: only while this store still owns it (cluster: per the
    /// controller's assignment). Otherwise a store that lost a container would take it back from its new owner.
    /// </summary>
    public Func<int, bool> Owns
    {
        get => _owns;
        set => _owns = value;
    }

    /// <summary>Starts every container (standalone: this store owns them all) and recovers them in parallel.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        CheckContainerCount();
        await Task.WhenAll(Enumerable.Range(0, _containers.Length).Select(id => StartContainerAsync(id, cancellationToken)));
    }

    /// <summary>Whether a container runs here now.</summary>
    public bool IsRunning(int id) => Volatile.Read(ref _containers[id]) is { State: ContainerState.Running or ContainerState.Recovering };

    /// <summary>Starts a container this store now owns: it recovers the log, fencing the previous owner.</summary>
    public async Task StartOwnedAsync(int id, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _containers[id]) is null)
        {
            await StartContainerAsync(id, cancellationToken);
        }
    }

    /// <summary>Stops a container this store no longer owns; its clients are told to retry (elsewhere).</summary>
    public async Task StopAsync(int id)
    {
        if (Interlocked.Exchange(ref _containers[id], null) is { } container)
        {
            _logger.LogInformation("Stopping container {Container}: no longer owned by this store.", id);
            await container.DisposeAsync();
        }
    }

    /// <summary>The running container that owns <paramref name="segmentName"/>, or an outcome saying why there is none.</summary>
    public SegmentContainer? ContainerFor(string segmentName, out OperationOutcome error)
    {
        var id = ContainerMapper.ContainerOf(segmentName, _containers.Length);
        var container = Volatile.Read(ref _containers[id]);
        if (container is null || container.State != ContainerState.Running)
        {
            error = OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable, $"Container {id} (owner of {segmentName}) is not ready yet; retry.");
            return null;
        }

        error = default;
        return container;
    }

    public IEnumerable<SegmentContainer> RunningContainers =>
        _containers.Where(c => c is { State: ContainerState.Running }).Select(c => c!);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_supervisors);
        for (var id = 0; id < _containers.Length; id++)
        {
            if (Interlocked.Exchange(ref _containers[id], null) is { } container)
            {
                await container.DisposeAsync();
            }
        }

        _stop.Dispose();
        if (_tier2 is not null)
        {
            await _tier2.DisposeAsync();
        }
    }

    private async Task StartContainerAsync(int id, CancellationToken cancellationToken)
    {
        _logger.LogInformation("Starting container {Container}.", id);
        var container = new SegmentContainer(id, _logFactory(id), Cache, _options.ToContainerOptions(), _loggerFactory.CreateLogger($"Streams.SegmentStore.Container{id}"), _tier2, ChunkCache);
        try
        {
            await container.StartAsync(cancellationToken);
        }
        catch
        {
            await container.DisposeAsync();
            throw;
        }

        Volatile.Write(ref _containers[id], container);
        lock (_supervisors)
        {
            _supervisors.Add(SuperviseAsync(container));
        }
    }

    /// <summary>Restarts a container when it fails, with back-off while restarts keep failing.</summary>
    private async Task SuperviseAsync(SegmentContainer container)
    {
        try
        {
            await container.Failed.WaitAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var id = container.Id;
        if (Interlocked.CompareExchange(ref _containers[id], null, container) != container)
        {
            return; // already stopped by its owner
        }

        await container.DisposeAsync();
        await RetryLoop.UntilSuccessAsync($"Restarting container {id}", async token =>
        {
            if (_owns(id))
            {
                _logger.LogWarning("Restarting container {Container} after failure: {Error}", id, container.Failure?.Message);
                await StartContainerAsync(id, token);
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
            if (recorded.ValueKind != JsonValueKind.Object || !recorded.TryGetProperty("format", out var format) || format.GetInt32() != LayoutFormat)
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
