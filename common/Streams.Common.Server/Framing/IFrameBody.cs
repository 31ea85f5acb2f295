using System.Buffers;

namespace Streams.Common.Server.Framing;

/// <summary>
/// A reply written by hand into the connection's send buffer (typically a payload from a cache or journal buffer,
/// copied once into the socket's pipe). Disposed after it is written, or if the connection closes first.
/// </summary>
public interface IFrameBody : IDisposable
{
    int Size { get; }

    void Write(IBufferWriter<byte> writer);
}
