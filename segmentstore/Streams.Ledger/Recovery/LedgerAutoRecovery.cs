using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;
using Streams.Ledger.Bookies;

namespace Streams.Ledger.Recovery;

/// <summary>
/// Ledger auto-recovery as one bookie process runs it: it competes to be the auditor (one in the cluster, elected at
/// /ledger-recovery/auditor) and runs a replication worker, until disposed. The auditor marks closed ledgers that lost
/// copies with a bookie that is gone for good; every worker repairs marked ledgers by copying their entries to a live
/// bookie and recording it in their metadata (<see cref="LedgerAuditor"/>, <see cref="ReplicationWorker"/>).
/// </summary>
public sealed class LedgerAutoRecovery : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly LedgerAuditor _auditor;
    private readonly Task _election;
    private readonly Task _worker;

    private LedgerAutoRecovery(IMetadataStore store, BookieDirectory bookies, string bookieId, AutoRecoveryOptions options, ILoggerFactory loggers)
    {
        _auditor = new LedgerAuditor(store, options, loggers.CreateLogger<LedgerAuditor>());
        var worker = new ReplicationWorker(store, bookies, bookieId, options, loggers.CreateLogger<ReplicationWorker>());
        var logger = loggers.CreateLogger<LedgerAutoRecovery>();
        var election = new LeaderElection(store, UnderReplicatedLedgers.AuditorPath, bookieId, logger);
        _election = Task.Run(() => election.RunAsync(_auditor.RunAsync, _stop.Token), CancellationToken.None);
        _worker = Task.Run(() => RetryLoop.RunAsync("Ledger replication worker", async token => await worker.RunAsync(token), logger, null, _stop.Token), CancellationToken.None);
    }

    /// <summary>Ledgers marked under-replicated, while this process is the auditor; otherwise null.</summary>
    public long? UnderReplicated => _auditor.UnderReplicated;

    /// <summary>Starts auditing (when elected) and repairing for the bookie <paramref name="bookieId"/>.</summary>
    public static LedgerAutoRecovery Start(IMetadataStore store, BookieDirectory bookies, string bookieId, AutoRecoveryOptions options, ILoggerFactory loggers)
    {
        options.Validate();
        return new LedgerAutoRecovery(store, bookies, bookieId, options, loggers);
    }

    /// <summary>Stops auditing and repairing; a repair in progress is abandoned (its ledger keeps its mark).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_election, _worker);
        _stop.Dispose();
    }
}
