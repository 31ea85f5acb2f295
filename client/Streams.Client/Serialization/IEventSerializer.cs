using System.Buffers;

namespace Streams.Client.Serialization;

/// <summary>Turns events into bytes and back. Implementations must be thread-safe.</summary>
public interface IEventSerializer<T>
{
    /// <summary>Writes <paramref name="value"/> into <paramref name="destination"/>.</summary>
    void Serialize(T value, IBufferWriter<byte> destination);

    /// <summary>Reads an event. <paramref name="payload"/> is only valid during the call.</summary>
    T Deserialize(ReadOnlySequence<byte> payload);
}
