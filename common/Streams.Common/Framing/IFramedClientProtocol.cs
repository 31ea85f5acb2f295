using System.Buffers;
using Google.Protobuf;

namespace Streams.Common.Framing;

/// <summary>
/// The protocol-specific part of a <see cref="FramedClientConnection"/>: how reply frames are decoded and matched to
/// requests, what the keep-alive probe is, which errors callers see, and what happens when the connection closes.
/// </summary>
public interface IFramedClientProtocol
{
    /// <summary>
    /// Decodes one reply frame and hands it on: <see cref="FramedClientConnection.Complete"/> or
    /// <see cref="FramedClientConnection.Fail"/> for a request's reply, <see cref="FramedClientConnection.OnHello"/>
    /// for the hello reply. <paramref name="frame"/> points into pooled receive buffers and is valid only during the
    /// call: whatever outlives it is copied. An exception closes the connection with it as the reason.
    /// </summary>
    void OnFrame(FramedClientConnection connection, in ReadOnlySequence<byte> frame);

    /// <summary>Checks the hello reply; throws the protocol's error if the peer cannot be spoken to.</summary>
    void CheckHello(object reply);

    /// <summary>The probe sent on a quiet connection; the peer must answer it at once.</summary>
    IMessage CreateKeepAlive(long nonce);

    /// <summary>The error a caller sees for <paramref name="failure"/>, caused by <paramref name="cause"/>.</summary>
    Exception Failure(FramedFailure failure, Exception cause);

    /// <summary>
    /// The reconnect hook: called once, when the connection closes for whatever reason, after every pending
    /// request has failed. A closed connection is never reused; the owner makes a new one.
    /// </summary>
    void OnClosed(Exception reason);
}
