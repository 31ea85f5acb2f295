using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Streams.Client.Serialization;

/// <summary>Ready-made serializers.</summary>
public static class Serializers
{
    /// <summary>UTF-8 strings.</summary>
    public static IEventSerializer<string> Utf8 { get; } = new Utf8Serializer();

    /// <summary>Raw bytes, unchanged.</summary>
    public static IEventSerializer<byte[]> Bytes { get; } = new BytesSerializer();

    /// <summary>JSON through System.Text.Json source-generated metadata.</summary>
    public static IEventSerializer<T> Json<T>(JsonTypeInfo<T> typeInfo) => new JsonEventSerializer<T>(typeInfo);

    private sealed class Utf8Serializer : IEventSerializer<string>
    {
        public void Serialize(string value, IBufferWriter<byte> destination) => Encoding.UTF8.GetBytes(value, destination);

        public string Deserialize(ReadOnlySequence<byte> payload) => Encoding.UTF8.GetString(payload);
    }

    private sealed class BytesSerializer : IEventSerializer<byte[]>
    {
        public void Serialize(byte[] value, IBufferWriter<byte> destination) => destination.Write(value);

        public byte[] Deserialize(ReadOnlySequence<byte> payload) => payload.ToArray();
    }

    private sealed class JsonEventSerializer<T>(JsonTypeInfo<T> typeInfo) : IEventSerializer<T>
    {
        public void Serialize(T value, IBufferWriter<byte> destination)
        {
            using var writer = new Utf8JsonWriter(destination);
            JsonSerializer.Serialize(writer, value, typeInfo);
        }

        public T Deserialize(ReadOnlySequence<byte> payload)
        {
            var reader = new Utf8JsonReader(payload);
            return JsonSerializer.Deserialize(ref reader, typeInfo)!;
        }
    }
}
