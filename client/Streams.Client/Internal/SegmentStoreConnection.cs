using System.Buffers;
using System.Collections.Concurrent;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>
/// One connection to a segment store, shared by every writer and reader of the client that talks to it: appends
/// of many (writer, segment) pairs are multiplexed by request id, reads run concurrently. When the connection
/// breaks, every listener hears <see cref="IAppendListener.OnDisconnected"/> and every pending read fails;
/// the pool then hands out a fresh connection.
/// </summary>
internal abstract class SegmentStoreConnection : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, IAppendListener> _listeners = new();
    private long _nextRequestId;
    private volatile Exception? _closedReason;

    public bool IsClosed => _closedReason is not null;

    public long NextRequestId() => Interlocked.Increment(ref _nextRequestId);

    public void Register(long requestId, IAppendListener listener)
    {
        _listeners[requestId] = listener;
        if (_closedReason is { } reason && _listeners.TryRemove(requestId, out _))
        {
            listener.OnDisconnected(reason);
        }
    }

    public void Unregister(long requestId) => _listeners.TryRemove(requestId, out _);

    public abstract ValueTask SendSetupAsync(long requestId, Guid writerId, string segment, CancellationToken cancellationToken);

    /// <summary>Sends a block; <paramref name="data"/> is written straight from the caller's buffers.</summary>
    public abstract ValueTask SendBlockAsync(AppendBlockHeader header, ReadOnlySequence<byte> data, CancellationToken cancellationToken);

    public abstract Task<SegmentReadReply> ReadAsync(string segment, long offset, int maxBytes, int waitMillis, CancellationToken cancellationToken);

    public abstract Task<SegmentInfo> GetInfoAsync(string segment, CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    protected void Dispatch(AppendReply reply)
    {
        switch (reply.KindCase)
        {
            case AppendReply.KindOneofCase.Setup when _listeners.TryGetValue(reply.Setup.RequestId, out var listener):
                listener.OnSetup(reply.Setup);
                break;
            case AppendReply.KindOneofCase.Appended when _listeners.TryGetValue(reply.Appended.RequestId, out var listener):
                listener.OnAppended(reply.Appended);
                break;
            case AppendReply.KindOneofCase.Rejected when _listeners.TryGetValue(reply.Rejected.RequestId, out var listener):
                listener.OnRejected(reply.Rejected);
                break;
        }
    }

    /// <summary>Marks the connection closed and tells every listener. Idempotent.</summary>
    protected void Close(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _closedReason, reason, null) is not null)
        {
            return;
        }

        foreach (var id in _listeners.Keys)
        {
            if (_listeners.TryRemove(id, out var listener))
            {
                listener.OnDisconnected(reason);
            }
        }

        OnClosed(reason);
    }

    /// <summary>Fails the implementation's pending requests.</summary>
    protected abstract void OnClosed(Exception reason);

    protected Exception ClosedError => new IOException("The connection to the segment store is closed.", _closedReason);
}
