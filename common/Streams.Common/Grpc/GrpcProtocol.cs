using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Streams.Common.Grpc;

/// <summary>
/// The parts of gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md) that client and server share:
/// message framing, the grpc-timeout header, and the percent-encoding of grpc-message.
/// </summary>
internal static class GrpcProtocol
{
    public const string ContentType = "application/grpc";
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";

    /// <summary>Each message is preceded by a 1-byte compressed flag and a 4-byte big-endian length.</summary>
    public const int MessageHeaderSize = 5;

    /// <summary>
    /// Default limit on one received message. 16 MiB leaves room for the largest event (8 MiB) plus
    /// framing; gRPC's own default of 4 MiB would refuse legal events.
    /// </summary>
    public const int DefaultMaxMessageSize = 16 * 1024 * 1024;

    public static void WriteMessageHeader(Span<byte> destination, int length, bool compressed = false)
    {
        destination[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>Writes a length-prefixed message straight into <paramref name="writer"/>.</summary>
    public static void WriteMessage<T>(IBufferWriter<byte> writer, Marshaller<T> marshaller, T message)
    {
        var size = marshaller.Size(message);
        WriteMessageHeader(writer.GetSpan(MessageHeaderSize), size);
        writer.Advance(MessageHeaderSize);
        marshaller.Write(message, writer);
    }

    /// <summary>
    /// Takes one whole message off the front of <paramref name="buffer"/>, if it holds one.
    /// Throws RESOURCE_EXHAUSTED as soon as a header announces a message over <paramref name="maxMessageSize"/>,
    /// before its body is buffered, and UNIMPLEMENTED for a compressed message.
    /// </summary>
    public static bool TryReadMessage(ref ReadOnlySequence<byte> buffer, int maxMessageSize, out ReadOnlySequence<byte> message)
    {
        message = default;
        if (buffer.Length < MessageHeaderSize)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[MessageHeaderSize];
        buffer.Slice(0, MessageHeaderSize).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (header[0] != 0)
        {
            throw new RpcException(header[0] == 1 ? StatusCode.Unimplemented : StatusCode.Internal,
                header[0] == 1 ? "Compressed messages are not supported; send with grpc-encoding identity." : $"Invalid gRPC message flag {header[0]}.");
        }

        if (length > (uint)maxMessageSize)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Received message of {length} bytes exceeds the limit of {maxMessageSize} bytes.");
        }

        if (buffer.Length < MessageHeaderSize + length)
        {
            return false;
        }

        message = buffer.Slice(MessageHeaderSize, length);
        buffer = buffer.Slice(message.End);
        return true;
    }

    /// <summary>Formats a timeout as grpc-timeout: at most 8 digits and a unit.</summary>
    public static string FormatTimeout(TimeSpan timeout)
    {
        var ticks = Math.Max(0, timeout.Ticks);
        // Pick the finest unit whose value fits in 8 digits; round up so the server never sees a shorter deadline.
        const long MaxValue = 99_999_999;
        var micros = (ticks + 9) / 10;
        if (micros <= MaxValue)
        {
            return micros.ToString(CultureInfo.InvariantCulture) + "u";
        }

        var millis = (ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond;
        if (millis <= MaxValue)
        {
            return millis.ToString(CultureInfo.InvariantCulture) + "m";
        }

        var seconds = (ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond;
        if (seconds <= MaxValue)
        {
            return seconds.ToString(CultureInfo.InvariantCulture) + "S";
        }

        var minutes = Math.Min(MaxValue, (ticks + TimeSpan.TicksPerMinute - 1) / TimeSpan.TicksPerMinute);
        return minutes.ToString(CultureInfo.InvariantCulture) + "M";
    }

    /// <summary>Parses a grpc-timeout value ("100m", "5S", "1H"...). Returns false if it is malformed.</summary>
    public static bool TryParseTimeout(string? value, out TimeSpan timeout)
    {
        timeout = default;
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return false;
        }

        if (!long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            return false;
        }

        long ticks;
        switch (value[^1])
        {
            case 'H': ticks = amount * TimeSpan.TicksPerHour; break;
            case 'M': ticks = amount * TimeSpan.TicksPerMinute; break;
            case 'S': ticks = amount * TimeSpan.TicksPerSecond; break;
            case 'm': ticks = amount * TimeSpan.TicksPerMillisecond; break;
            case 'u': ticks = amount * 10; break;
            case 'n': ticks = amount / 100; break;
            default: return false;
        }

        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }

    /// <summary>Percent-encodes grpc-message: bytes outside printable ASCII, and '%', become %XX of their UTF-8.</summary>
    public static string EncodeMessage(string message)
    {
        var needs = false;
        foreach (var c in message)
        {
            if (c < ' ' || c > '~' || c == '%')
            {
                needs = true;
                break;
            }
        }

        if (!needs)
        {
            return message;
        }

        var bytes = Encoding.UTF8.GetBytes(message);
        var builder = new StringBuilder(bytes.Length * 2);
        foreach (var b in bytes)
        {
            if (b < ' ' || b > '~' || b == '%')
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append((char)b);
            }
        }

        return builder.ToString();
    }

    /// <summary>Decodes a percent-encoded grpc-message; malformed escapes are kept as they are.</summary>
    public static string DecodeMessage(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return string.Empty;
        }

        if (!value.Contains('%', StringComparison.Ordinal))
        {
            return value;
        }

        var bytes = new List<byte>(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '%' && i + 2 < value.Length
                && byte.TryParse(value.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(value[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Maps an HTTP status that is not 200 to a gRPC status code, as PROTOCOL-HTTP2.md prescribes.</summary>
    public static StatusCode FromHttpStatus(int httpStatus) => httpStatus switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    public static bool TryParseStatus(string? value, out StatusCode code)
    {
        code = StatusCode.Unknown;
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            code = (StatusCode)number;
            return true;
        }

        return false;
    }
}
