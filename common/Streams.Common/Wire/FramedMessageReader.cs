using System.Buffers;
using System.IO.Pipelines;
using Grpc.Core;

namespace Streams.Common.Wire;

/// <summary>
/// Reads the raw carrier's length-prefixed messages from a pipe without copying them. <see cref="Current"/> points into
/// the pipe's buffers and stays valid only until the next <see cref="MoveNextAsync"/>: callers parse the
/// small header fields and copy payloads exactly once, to where they must go.
/// Every whole message already buffered is returned before the pipe is asked for more.
/// </summary>
public sealed class FramedMessageReader
{
    private readonly PipeReader _reader;
    private readonly int _maxMessageSize;
    private ReadOnlySequence<byte> _buffer;
    private bool _holdsBuffer;
    private bool _completed;

    /// <summary>Reads frames from <paramref name="reader"/>, refusing any frame longer than <paramref name="maxMessageSize"/>.</summary>
    public FramedMessageReader(PipeReader reader, int maxMessageSize)
    {
        _reader = reader;
        _maxMessageSize = maxMessageSize;
    }

    /// <summary>The current message's bytes, without the length prefix.</summary>
    public ReadOnlySequence<byte> Current { get; private set; }

    /// <summary>
    /// Advances to the next message. Returns false at a clean end of stream. Throws <see cref="RpcException"/>:
    /// INTERNAL if the stream ends inside a message, RESOURCE_EXHAUSTED as soon as a prefix announces an
    /// oversized message (before its body is buffered).
    /// </summary>
    public async ValueTask<bool> MoveNextAsync(CancellationToken cancellationToken = default)
    {
        Current = default;
        while (true)
        {
            if (_holdsBuffer)
            {
                if (TryRead(ref _buffer, out var message))
                {
                    Current = message;
                    return true;
                }

                // Not enough for a whole message: everything left is examined, nothing more consumed.
                _reader.AdvanceTo(_buffer.Start, _buffer.End);
                _holdsBuffer = false;
                if (_completed)
                {
                    if (!_buffer.IsEmpty)
                    {
                        throw new RpcException(new Status(StatusCode.Internal, "The stream ended inside a message."));
                    }

                    return false;
                }
            }

            var result = await _reader.ReadAsync(cancellationToken);
            if (result.IsCanceled)
            {
                throw new OperationCanceledException("The read was cancelled.");
            }

            _buffer = result.Buffer;
            _holdsBuffer = true;
            _completed = result.IsCompleted;
        }
    }

    /// <summary>Releases the buffers held for the last message, so the pipe can reuse their memory.</summary>
    public void Release()
    {
        if (_holdsBuffer)
        {
            _reader.AdvanceTo(_buffer.Start);
            _holdsBuffer = false;
        }
    }

    private bool TryRead(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message) =>
        RawFraming.TryReadFrame(ref buffer, _maxMessageSize, out message);
}
