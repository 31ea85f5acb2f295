using System.Text;
using Grpc.Core;
using Streams.Client.Internal;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Common.Hashing;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.Controller;

namespace Streams.Client.Transactions;

/// <summary>
/// A transaction (<see cref="ITransaction{T}"/>). Each event goes to the transaction segment of the segment its routing
/// key falls in, among the segments of the epoch the transaction began in; a segment's transaction segment is written
/// by one <see cref="SegmentWriter"/> under the transaction's id as writer id, created on the first event for it. While
/// open, the lease is renewed every third of it. The commit names the segments written to.
/// </summary>
internal sealed class Transaction<T> : ITransaction<T>
{
    private readonly IEventSerializer<T> _serializer;
    private readonly WriterContext _context;
    private readonly EventWriterOptions _options;
    private readonly TransactionRef _reference;
    private readonly Guid _id;
    private readonly SegmentRange[] _segments;
    private readonly Dictionary<long, SegmentWriter> _writers = [];
    private readonly HashSet<long> _touched = [];
    private readonly object _lock = new();
    private readonly CancellationTokenSource _stopPings = new();
    private readonly Task _pings;
    private TransactionStatus _status = TransactionStatus.Open;
    private string? _failure;
    private Exception? _writeFailure;
    private bool _closedForWrites;

    public Transaction(BeginTransactionReply begun, IEventSerializer<T> serializer, WriterContext context, EventWriterOptions options)
    {
        _serializer = serializer;
        _context = context;
        _options = options;
        var info = begun.Transaction;
        _reference = new TransactionRef { Scope = info.Scope, Stream = info.Stream, TransactionId = info.TransactionId };
        _id = Guid.ParseExact(info.TransactionId, "N");
        _segments = [.. begun.Segments.OrderBy(s => s.KeyStart)];
        var lease = TimeSpan.FromMilliseconds(Math.Max(1, info.LeaseExpiresAtUnixMs - info.CreatedAtUnixMs));
        _pings = Task.Run(() => PingAsync(lease / 3));
    }

    public string Id => _reference.TransactionId;

    public async Task WriteEventAsync(string? routingKey, T value, CancellationToken cancellationToken = default)
    {
        var buffer = new PooledBuffer(256);
        try
        {
            _serializer.Serialize(value, buffer);
            if (buffer.WrittenCount > EventFraming.MaxEventSize)
            {
                throw new ArgumentException($"The event is {buffer.WrittenCount} bytes; the limit is {EventFraming.MaxEventSize} bytes (8 MiB).", nameof(value));
            }

            // Always stored: a commit after a scale splits the transaction's events among the segments that own their keys now.
            var storeKey = routingKey is not null;
            var key = storeKey ? Encoding.UTF8.GetBytes(routingKey!) : [];
            if (key.Length > EventFraming.MaxRoutingKeyLength)
            {
                throw new ArgumentException($"A stored routing key is at most {EventFraming.MaxRoutingKeyLength} UTF-8 bytes; this one has {key.Length}.", nameof(routingKey));
            }

            var hasKey = routingKey is not null;
            var point = hasKey ? KeySpace.PointOf(routingKey!) : Random.Shared.NextDouble();
            var bytes = EventFraming.FrameSize(buffer.WrittenCount, storeKey ? key.Length : -1);
            await _context.Budget.AcquireAsync(bytes, cancellationToken);
            Task completion;
            lock (_lock)
            {
                if (_status != TransactionStatus.Open || _failure is not null || _closedForWrites)
                {
                    _context.Budget.Release(bytes);
                    throw Failed();
                }

                var writer = WriterFor(point);
                if (!writer.TryAppend(buffer.WrittenSpan, key, storeKey, point, hasKey, null, out completion))
                {
                    _context.Budget.Release(bytes);
                    throw Failed();
                }
            }

            // A failed event fails the commit, whether or not the application awaited it.
            _ = completion.ContinueWith(static (t, self) => ((Transaction<T>)self!).LatchWriteFailure(t.Exception!.InnerException!), this,
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

            try
            {
                await completion;
            }
            catch (Exception e) when (e is not TransactionFailedException)
            {
                throw _failure is null ? e : Failed(e);
            }
        }
        finally
        {
            buffer.Dispose();
        }
    }

    public Task FlushAsync(CancellationToken cancellationToken = default)
    {
        List<SegmentWriter> writers;
        lock (_lock)
        {
            writers = [.. _writers.Values];
        }

        return Task.WhenAll(writers.Select(w => w.FlushAsync())).WaitAsync(cancellationToken);
    }

    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_status is TransactionStatus.Aborting or TransactionStatus.Aborted)
            {
                throw Failed();
            }

            if (_status == TransactionStatus.Committed)
            {
                return;
            }

            // From here no event joins: one that raced the flush would be durable in a segment the commit never merges.
            _closedForWrites = true;
        }

        try
        {
            await FlushAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LatchWriteFailure(e);
        }

        if (Volatile.Read(ref _writeFailure) is { } failed)
        {
            throw new TransactionFailedException($"Transaction {Id} could not make all of its events durable ({failed.Message}); it was not committed (dispose or abort it).", failed);
        }

        var request = new CommitTransactionRequest { Transaction = _reference, Wait = true };
        lock (_lock)
        {
            request.SegmentIds.AddRange(_touched.Order());
        }

        try
        {
            // A commit is idempotent, so it is retried on another controller; the merges can take the controller's whole
            // segment timeout when a segment store is away, so the call may wait that long on purpose. The lease is renewed
            // until the answer: the controller may wait for a scale before it decides.
            var info = await _context.Controller.CallTransactionsAsync((c, o) => c.CommitTransactionAsync(request, o), cancellationToken, serverWait: TimeSpan.FromSeconds(60));
            SetStatus(info);
        }
        catch (StreamsException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            SetStatus(TransactionStatus.Aborted, e.Message);
            await StopPingsAsync();
            await CloseWritersAsync();
            throw new TransactionFailedException(e.Message, e);
        }

        // Committed. (Any other failure leaves the transaction as it is, open or decided: CheckStatusAsync tells, and
        // CommitAsync may be called again, with the same segments.)
        await StopPingsAsync();
        await CloseWritersAsync();
    }

    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_status is TransactionStatus.Committing or TransactionStatus.Committed)
            {
                throw new TransactionFailedException($"Transaction {Id} is {_status.ToString().ToLowerInvariant()}; it can no longer be aborted.");
            }

            _status = TransactionStatus.Aborting;
            _failure ??= "it was aborted";
        }

        await StopPingsAsync();
        await CloseWritersAsync();
        try
        {
            SetStatus(await _context.Controller.CallTransactionsAsync((c, o) => c.AbortTransactionAsync(_reference, o), cancellationToken));
        }
        catch (StreamsException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            throw new TransactionFailedException(e.Message, e);
        }
    }

    public async Task<TransactionStatus> CheckStatusAsync(CancellationToken cancellationToken = default)
    {
        var info = await _context.Controller.CallTransactionsAsync((c, o) => c.GetTransactionAsync(_reference, o), cancellationToken);
        return TransactionStates.StatusOf(info.State);
    }

    public async ValueTask DisposeAsync()
    {
        bool open;
        lock (_lock)
        {
            open = _status == TransactionStatus.Open;
        }

        if (open)
        {
            try
            {
                await AbortAsync();
            }
            catch (Exception e) when (e is StreamsException or OperationCanceledException)
            {
                // The controller could not be told: the lease runs out and aborts it.
            }
        }

        await StopPingsAsync();
        await CloseWritersAsync();
        _stopPings.Dispose();
    }

    /// <summary>The writer of the transaction segment under the segment holding <paramref name="point"/> (lock held).</summary>
    private SegmentWriter WriterFor(double point)
    {
        var segment = _segments[^1];
        foreach (var s in _segments)
        {
            if (point < s.KeyEnd)
            {
                segment = s;
                break;
            }
        }

        _touched.Add(segment.SegmentId);
        if (!_writers.TryGetValue(segment.SegmentId, out var writer))
        {
            var range = new SegmentRange
            {
                SegmentId = segment.SegmentId,
                Segment = TransactionName.Compose(segment.Segment, _id),
                KeyStart = segment.KeyStart,
                KeyEnd = segment.KeyEnd,
            };
            writer = new SegmentWriter(range, _id, _context, _options, OnSealed);
            _writers[segment.SegmentId] = writer;
        }

        return writer;
    }

    /// <summary>A transaction segment was sealed under the writer: the transaction is committing or was aborted elsewhere.</summary>
    private void OnSealed(SegmentWriter writer)
    {
        lock (_lock)
        {
            _failure ??= "its segments were sealed (it is committing, or was aborted: its lease may have expired)";
        }

        _ = Task.Run(async () =>
        {
            var error = Failed();
            foreach (var block in await writer.DrainAsync())
            {
                block.Completion.TrySetException(error);
                _context.Budget.Release(block.Bytes);
                block.Release();
            }
        });
    }

    private void LatchWriteFailure(Exception error)
    {
        Interlocked.CompareExchange(ref _writeFailure, error, null);
    }

    private async Task PingAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval < TimeSpan.FromMilliseconds(100) ? TimeSpan.FromMilliseconds(100) : interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopPings.Token))
            {
                try
                {
                    var request = new PingTransactionRequest { Transaction = _reference };
                    SetStatus(await _context.Controller.CallTransactionsAsync((c, o) => c.PingTransactionAsync(request, o), _stopPings.Token));
                }
                catch (StreamsException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    lock (_lock)
                    {
                        _failure ??= e.Message;
                    }

                    return;
                }
                catch (StreamsException)
                {
                    // The next ping tries again; the lease has two more thirds to go.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task StopPingsAsync()
    {
        if (!_stopPings.IsCancellationRequested)
        {
            await _stopPings.CancelAsync();
        }

        await _pings;
    }

    private async Task CloseWritersAsync()
    {
        List<SegmentWriter> writers;
        lock (_lock)
        {
            writers = [.. _writers.Values];
            _writers.Clear();
        }

        foreach (var writer in writers)
        {
            await writer.DisposeAsync();
        }
    }

    private void SetStatus(TransactionInfo info) => SetStatus(TransactionStates.StatusOf(info.State), info.AbortReason);

    private void SetStatus(TransactionStatus status, string? reason)
    {
        lock (_lock)
        {
            _status = status;
            if (status is TransactionStatus.Aborting or TransactionStatus.Aborted)
            {
                _failure ??= string.IsNullOrEmpty(reason) ? "it was aborted" : reason;
            }
        }
    }

    private TransactionFailedException Failed(Exception? inner = null) =>
        new($"Transaction {Id} takes no more events: {_failure ?? $"it is {_status.ToString().ToLowerInvariant()}"}.", inner);
}
