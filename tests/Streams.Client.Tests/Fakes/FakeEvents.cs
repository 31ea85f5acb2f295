using System.Buffers;
using System.Text;
using Streams.Common.Wire;

namespace Streams.Client.Tests.Fakes;

/// <summary>Frames events into segment bytes and reads them back, as a segment stores them.</summary>
public static class FakeEvents
{
    public static byte[] Frame(string value, string? key = null)
    {
        var payload = Encoding.UTF8.GetBytes(value);
        var keyBytes = key is null ? [] : Encoding.UTF8.GetBytes(key);
        var frame = new byte[EventFraming.FrameSize(payload.Length, key is null ? -1 : keyBytes.Length)];
        EventFraming.Write(frame, payload, keyBytes, key is not null);
        return frame;
    }

    public static byte[] Frames(IEnumerable<string> values) => [.. values.SelectMany(v => Frame(v))];

    /// <summary>The events of a segment's bytes: (stored key, value).</summary>
    public static List<(string? Key, string Value)> Parse(byte[] data)
    {
        var events = new List<(string? Key, string Value)>();
        var buffer = new ReadOnlySequence<byte>(data);
        while (EventFraming.TryReadEvent(ref buffer, out var framed))
        {
            events.Add((framed.HasKey ? Encoding.UTF8.GetString(framed.Key) : null, Encoding.UTF8.GetString(framed.Payload)));
        }

        if (buffer.Length > 0)
        {
            throw new InvalidDataException($"{buffer.Length} bytes after the last whole event.");
        }

        return events;
    }
}
