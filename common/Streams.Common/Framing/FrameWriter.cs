using System.Buffers;

namespace Streams.Common.Framing;

/// <summary>
/// Writes one whole frame, length prefix included, into a connection's send buffer. Passing the frame's fields as
/// <paramref name="state"/> to a static lambda keeps a send free of closures.
/// </summary>
public delegate void FrameWriter<TState>(IBufferWriter<byte> output, in TState state);
