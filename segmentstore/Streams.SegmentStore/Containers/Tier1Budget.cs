using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Streams.SegmentStore.Containers;

/// <summary>
/// A container's Tier 1 budget: bytes accepted and not yet durably in Tier 2. Owned by the storage writer (which releases
/// what it flushed); the metadata adds what it accepts and checks the budget before every append. Lock-free: its counter
/// and timers are updated with interlocked operations, so it takes no lock on the append path.
/// </summary>
internal sealed class Tier1Budget
{
    private readonly int _containerId;
    private readonly StorageWriterOptions _options;
    private readonly string? _tier2;
    private readonly ILogger _logger;
    private long _bytes;
    private long _fullSince;
    private long _warnedAt;

    /// <param name="containerId">The container's number, for messages.</param>
    /// <param name="options">The budget and its timeout.</param>
    /// <param name="tier2">Where Tier 2 is (for messages); null when the container has none, and then the budget is never full.</param>
    /// <param name="logger">Where warnings go.</param>
    public Tier1Budget(int containerId, StorageWriterOptions options, string? tier2, ILogger logger)
    {
        _containerId = containerId;
        _options = options;
        _tier2 = tier2;
        _logger = logger;
    }

    /// <summary>Accepted bytes not yet durably in Tier 2.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>True when the budget is full (never without a Tier 2).</summary>
    public bool IsFull => _tier2 is not null && Bytes >= _options.Tier1Budget;

    /// <summary>True when half the budget is used: the storage writer then flushes everything it can.</summary>
    public bool UnderPressure => Bytes >= _options.Tier1Budget / 2;

    public void Add(long bytes) => Interlocked.Add(ref _bytes, bytes);

    public void Release(long bytes) => Interlocked.Add(ref _bytes, -bytes);

    /// <summary>Starts from the recovered state.</summary>
    public void Reset(long bytes) => Interlocked.Exchange(ref _bytes, bytes);

    /// <summary>
    /// Checks the budget for an append: null to go ahead, else whether to wait (<paramref name="wait"/>, for
    /// <see cref="AppendAcceptance.NoCapacity"/>) or the refusal once the budget stayed full past its timeout.
    /// </summary>
    public OperationOutcome? Check(out bool wait)
    {
        wait = false;
        if (!IsFull)
        {
            Volatile.Write(ref _fullSince, 0);
            return null;
        }

        var now = Stopwatch.GetTimestamp();
        var since = Interlocked.CompareExchange(ref _fullSince, now, 0);
        since = since == 0 ? now : since;
        var warned = Volatile.Read(ref _warnedAt);
        if ((warned == 0 || Stopwatch.GetElapsedTime(warned, now) >= TimeSpan.FromSeconds(30)) && Interlocked.CompareExchange(ref _warnedAt, now, warned) == warned)
        {
            _logger.LogWarning("Container {Container}: {Bytes} bytes are not in Tier 2 yet, the Tier 1 budget; appends wait for Tier 2 ({Tier2}).",
                _containerId, Bytes, _tier2);
        }

        var timeout = _options.BudgetTimeout;
        if (Stopwatch.GetElapsedTime(since, now) < timeout)
        {
            wait = true;
            return null;
        }

        return OperationOutcome.Fail(OutcomeStatus.ContainerUnavailable,
            $"Container {_containerId} has held {_options.Tier1Budget / (1024 * 1024)} MiB not yet in Tier 2 ({_tier2}) for more than " +
            $"{timeout.TotalSeconds:F0} s (is Tier 2 down?); retry later.");
    }
}
