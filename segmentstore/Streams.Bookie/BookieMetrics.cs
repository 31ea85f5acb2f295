using System.Diagnostics.Metrics;

namespace Streams.Bookie;

/// <summary>
/// The bookie's instruments (meter "Streams.Bookie"), in OpenTelemetry's naming: dotted names without the unit, base
/// units (bytes, seconds). Prometheus shows them with the unit and "_total" appended (docs/metrics.md lists every one).
/// </summary>
public static class BookieMetrics
{
    public const string MeterName = "Streams.Bookie";

    /// <summary>
    /// Bucket bounds of <see cref="CommitDuration"/>, in seconds: 0.1 ms to 5 s. A group commit is one write and
    /// flush of the journal: well under a millisecond on a fast SSD, milliseconds on a network disk; seconds mean a
    /// disk in trouble.
    /// </summary>
    public static readonly double[] CommitBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> AddedEntries = Meter.CreateCounter<long>("streams.bookie.added_entries", "{entry}", "Entries made durable in the journal.");

    public static readonly Counter<long> AddedBytes = Meter.CreateCounter<long>("streams.bookie.added", "By", "Entry payload bytes made durable in the journal.");

    public static readonly Counter<long> Commits = Meter.CreateCounter<long>("streams.bookie.journal.commits", "{commit}", "Journal group commits (each one write-through to disk).");

    public static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>("streams.bookie.journal.commit.duration", "s",
        "Time of one group commit: the journal's disk write and flush.");

    public static readonly Counter<long> ReadEntries = Meter.CreateCounter<long>("streams.bookie.read_entries", "{entry}", "Entries served to readers.");

    public static readonly Counter<long> CorruptEntries = Meter.CreateCounter<long>("streams.bookie.corrupt_entries", "{entry}", "Entries that failed their checksum on read and were refused.");

    public static readonly Counter<long> JournalFullWaits = Meter.CreateCounter<long>("streams.bookie.journal.full_waits", "{record}",
        "Records that found the journal's memory full and waited for a flush to free a page (their callers' threads did not).");

    public static readonly Counter<long> GcFailures = Meter.CreateCounter<long>("streams.bookie.journal.gc.failures", "{pass}",
        "Journal garbage-collection passes that failed (each is retried with back-off; readiness is degraded until one succeeds).");

    public static readonly Counter<long> ConnectionThrottled = Meter.CreateCounter<long>("streams.bookie.connection.throttled", "{wait}",
        "Times a raw connection's in-flight budget was spent and the bookie stopped reading its requests until some completed.");

    /// <summary>
    /// Registers gauges that observe a running bookie, on a meter of their own that the returned handle disposes (a
    /// stopped bookie is no longer observed).
    /// </summary>
    public static IDisposable Observe(Func<long> journalBytes, Func<int> ledgers)
    {
        var meter = new Meter(MeterName);
        meter.CreateObservableGauge("streams.bookie.journal.size", journalBytes, "By", "Bytes in the journal (live and not yet reclaimed).");
        meter.CreateObservableGauge("streams.bookie.ledgers", ledgers, "{ledger}", "Ledgers with entries on this bookie.");
        return meter;
    }
}
