using Microsoft.Extensions.Logging;

namespace Streams.Controller.Transactions;

/// <summary>
/// Merges the committing transactions this controller drives, one round at a time per stream: a round takes up to
/// <c>batch</c> of them in the order their commits were decided and sends one merge request per segment for all of
/// them (so a thousand concurrent commits cost a handful of merge rounds, not a thousand). The table of streams holds
/// only streams with commits waiting or running; a stream's loop ends, and leaves the table, when its queue is empty.
/// A transaction asked for twice (a repeated commit, the leader's sweep) is merged once and both callers are answered.
/// </summary>
internal sealed class TransactionCommitter(TransactionService service, int batch, ILogger logger)
{
    private readonly object _lock = new();
    private readonly Dictionary<string, StreamQueue> _streams = new(StringComparer.Ordinal);

    /// <summary>Queues a committing transaction; completes with its COMMITTED record once merged.</summary>
    public Task<TransactionRecord> CommitAsync(TransactionRecord committing, CancellationToken cancellationToken)
    {
        Task<TransactionRecord> task;
        lock (_lock)
        {
            var key = committing.Scope + "/" + committing.Stream;
            if (!_streams.TryGetValue(key, out var queue))
            {
                _streams[key] = queue = new StreamQueue(key);
            }

            if (!queue.ById.TryGetValue(committing.Id, out var entry))
            {
                entry = new Entry(committing);
                queue.ById[committing.Id] = entry;
                queue.Waiting.Enqueue(entry);
                if (!queue.Draining)
                {
                    queue.Draining = true;
                    _ = Task.Run(() => DrainAsync(queue), CancellationToken.None);
                }
            }

            task = entry.Done.Task;
        }

        return task.WaitAsync(cancellationToken);
    }

    private async Task DrainAsync(StreamQueue queue)
    {
        while (true)
        {
            List<Entry> round;
            lock (_lock)
            {
                if (queue.Waiting.Count == 0)
                {
                    queue.Draining = false;
                    _streams.Remove(queue.Key);
                    return;
                }

                round = [];
                while (round.Count < batch && queue.Waiting.TryDequeue(out var next))
                {
                    round.Add(next);
                }

            }

            try
            {
                await service.MergeRoundAsync([.. round.Select(e => e.Record)], CancellationToken.None);
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                foreach (var entry in round)
                {
                    entry.Done.TrySetResult(entry.Record with { State = TransactionRecordState.Committed, FinishedAtUnixMs = now });
                }
            }
            catch (Exception e)
            {
                logger.LogWarning("A merge round of {Count} transaction(s) on {Stream} failed ({Error}); the leading controller drives them again.", round.Count, queue.Key, e.Message);

                foreach (var entry in round)
                {
                    entry.Done.TrySetException(e);
                }
            }
            finally
            {
                lock (_lock)
                {
                    foreach (var entry in round)
                    {
                        queue.ById.Remove(entry.Record.Id);
                    }
                }
            }
        }
    }

    private sealed class StreamQueue(string key)
    {
        public string Key { get; } = key;

        public Queue<Entry> Waiting { get; } = new();

        public Dictionary<string, Entry> ById { get; } = new(StringComparer.Ordinal);

        public bool Draining { get; set; }
    }

    private sealed class Entry(TransactionRecord record)
    {
        public TransactionRecord Record { get; } = record;

        public TaskCompletionSource<TransactionRecord> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
