using System.Buffers;
using Google.Protobuf;
using Streams.Common.Server.Framing;

namespace Streams.Bookie.Server;

/// <summary>
/// A reply that gives its request's share of the connection's <see cref="InFlightBudget"/> back once it is written
/// into the socket's send buffer (or dropped with a closed connection): the reply channel disposes it then.
/// </summary>
internal sealed class BudgetedReply : IFrameBody
{
    private readonly IMessage? _message;
    private readonly IFrameBody? _body;
    private readonly InFlightBudget _budget;
    private readonly long _bytes;
    private int _released;

    public BudgetedReply(IMessage message, InFlightBudget budget, long bytes) => (_message, _budget, _bytes) = (message, budget, bytes);

    public BudgetedReply(IFrameBody body, InFlightBudget budget, long bytes) => (_body, _budget, _bytes) = (body, budget, bytes);

    public int Size => _body?.Size ?? _message!.CalculateSize();

    public void Write(IBufferWriter<byte> writer)
    {
        if (_body is not null)
        {
            _body.Write(writer);
        }
        else
        {
            _message!.WriteTo(writer);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _body?.Dispose();
            _budget.Release(_bytes);
        }
    }
}
