using System.Diagnostics.Metrics;

namespace Streams.Ledger.Recovery;

/// <summary>
/// Instruments of ledger auto-recovery (meter "Streams.Ledger"), in OpenTelemetry's naming; docs/metrics.md lists them
/// as Prometheus shows them.
/// </summary>
public static class AutoRecoveryMetrics
{
    public const string MeterName = "Streams.Ledger";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> RepairedLedgers = Meter.CreateCounter<long>("streams.ledger.recovery.repaired_ledgers", "{ledger}",
        "Ledgers whose lost copies were made again on live bookies and recorded in their metadata.");

    public static readonly Counter<long> RepairedEntries = Meter.CreateCounter<long>("streams.ledger.recovery.repaired_entries", "{entry}",
        "Entries copied to a replacement bookie by ledger repairs that were recorded in the metadata.");

    public static readonly Counter<long> CopiedBytes = Meter.CreateCounter<long>("streams.ledger.recovery.copied", "By",
        "Entry payload bytes written to replacement bookies by ledger repairs.");

    public static readonly Counter<long> Failures = Meter.CreateCounter<long>("streams.ledger.recovery.failures", "{failure}",
        "Repair attempts that failed (no spare bookie, no readable copy of an entry, a bookie refusing); each is retried.");

    /// <summary>
    /// The gauge of marked ledgers, reported only while <paramref name="underReplicated"/> gives a value (the elected
    /// auditor; the other bookie processes report nothing, so a sum over processes is the cluster's count). On a
    /// meter of its own that the returned handle disposes.
    /// </summary>
    public static IDisposable Observe(Func<long?> underReplicated)
    {
        var meter = new Meter(MeterName);
        meter.CreateObservableGauge("streams.ledger.recovery.underreplicated_ledgers",
            () => underReplicated() is { } count ? [new Measurement<long>(count)] : Array.Empty<Measurement<long>>(),
            "{ledger}", "Closed ledgers marked under-replicated: a copy of some entry is on a lost bookie and not yet made again.");
        return meter;
    }
}
