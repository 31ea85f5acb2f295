using Microsoft.Extensions.Logging;

namespace Streams.Controller.Transactions;

/// <summary>
/// The leading controller's sweep: aborts open transactions whose lease or lifetime ran out, finishes aborts that were
/// left half done, drives again commits whose driver went away (recorded COMMITTING longer ago than
/// <see cref="TransactionOptions.StalledCommitAfter"/>), and forgets finished transactions after
/// <see cref="TransactionOptions.FinishedRetention"/>. It reads one stream's records at a time, so its memory does not
/// grow with the number of transactions.
/// </summary>
public sealed partial class TransactionService
{
    /// <summary>Sweeps every <see cref="TransactionOptions.SweepInterval"/> while <paramref name="leadership"/> lasts.</summary>
    public async Task RunAsync(CancellationToken leadership)
    {
        using var timer = new PeriodicTimer(_options.SweepInterval, _clock);
        try
        {
            do
            {
                try
                {
                    await SweepAsync(leadership);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _logger.LogWarning("Sweeping transactions failed ({Error}); retrying in {Interval} s.", e.Message, _options.SweepInterval.TotalSeconds);
                }
            }
            while (await timer.WaitForNextTickAsync(leadership));
        }
        catch (OperationCanceledException) when (leadership.IsCancellationRequested)
        {
        }
    }

    /// <summary>One sweep over every stream's transactions; returns how many it acted on.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var acted = 0;
        foreach (var scope in await _store.GetChildrenAsync(Root, cancellationToken))
        {
            foreach (var stream in await _store.GetChildrenAsync($"{Root}/{scope}", cancellationToken))
            {
                acted += await SweepStreamAsync(scope, stream, cancellationToken);
            }
        }

        return acted;
    }

    private async Task<int> SweepStreamAsync(string scope, string stream, CancellationToken cancellationToken)
    {
        var acted = 0;
        var stalled = new List<TransactionRecord>();
        foreach (var id in await _store.GetChildrenAsync(RecordsPath(scope, stream), cancellationToken))
        {
            if (await ReadAsync(scope, stream, id, cancellationToken) is not var (record, version))
            {
                continue;
            }

            var now = Now;
            switch (record.State)
            {
                case TransactionRecordState.Open when record.ExpiryAt(now) is { } expired:
                    await AbortCoreAsync(record, version, expired, cancellationToken);
                    acted++;
                    break;
                case TransactionRecordState.Aborting:
                    await AbortCoreAsync(record, version, record.AbortReason ?? "aborted", cancellationToken);
                    acted++;
                    break;
                case TransactionRecordState.Committing when now - record.CommittingAtUnixMs >= _options.StalledCommitAfter.TotalMilliseconds:
                    stalled.Add(record);
                    break;
                case TransactionRecordState.Committed or TransactionRecordState.Aborted
                    when now - record.FinishedAtUnixMs >= _options.FinishedRetention.TotalMilliseconds:
                    await _store.TryDeleteAsync(RecordPath(scope, stream, id), version, cancellationToken);
                    acted++;
                    break;
            }
        }

        foreach (var id in await _store.GetChildrenAsync(CommittingPath(scope, stream), cancellationToken))
        {
            // A marker outlives its commit only if the stream or the record went meanwhile: it would hold scales forever.
            if (await ReadAsync(scope, stream, id, cancellationToken) is not { Record.State: TransactionRecordState.Committing })
            {
                await _store.TryDeleteAsync(MarkerPath(scope, stream, id), -1, cancellationToken);
                acted++;
            }
        }

        if (stalled.Count > 0)
        {
            _logger.LogWarning("{Count} transaction(s) on {Scope}/{Stream} have been committing for more than {After} s; merging them again.",
                stalled.Count, scope, stream, _options.StalledCommitAfter.TotalSeconds);
            // In the order the commits were decided. Its original driver may still be running: every merge is idempotent,
            // and whichever lands a transaction first fixes its place on the segment.
            foreach (var record in stalled.OrderBy(r => r.CommittingAtUnixMs).ThenBy(r => r.Id, StringComparer.Ordinal))
            {
                Observe(_committer.CommitAsync(record, CancellationToken.None));
            }

            acted += stalled.Count;
        }

        return acted;
    }

    /// <summary>A merge nobody waits for: its failure is logged by the committer, and the next sweep drives it again.</summary>
    private static void Observe(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
}
