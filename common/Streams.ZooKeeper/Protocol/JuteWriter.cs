using System.Buffers.Binary;
using System.Text;

namespace Streams.ZooKeeper.Protocol;

/// <summary>
/// Writes jute records (ZooKeeper's serialization): big-endian ints and longs, one-byte booleans, buffers and
/// strings as a 4-byte length (-1 for null) and bytes, vectors as a 4-byte count and items.
/// </summary>
internal sealed class JuteWriter
{
    private byte[] _buffer = new byte[256];

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, Length);

    public void WriteInt(int value)
    {
        Ensure(4);
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(Length), value);
        Length += 4;
    }

    public void WriteLong(long value)
    {
        Ensure(8);
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(Length), value);
        Length += 8;
    }

    public void WriteBool(bool value)
    {
        Ensure(1);
        _buffer[Length++] = value ? (byte)1 : (byte)0;
    }

    public void WriteBuffer(ReadOnlySpan<byte> value)
    {
        WriteInt(value.Length);
        Ensure(value.Length);
        value.CopyTo(_buffer.AsSpan(Length));
        Length += value.Length;
    }

    public void WriteNullBuffer() => WriteInt(-1);

    public void WriteString(string value)
    {
        var count = Encoding.UTF8.GetByteCount(value);
        WriteInt(count);
        Ensure(count);
        Length += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(Length));
    }

    public void WriteStrings(IReadOnlyCollection<string> values)
    {
        WriteInt(values.Count);
        foreach (var value in values)
        {
            WriteString(value);
        }
    }

    /// <summary>The open ACL (world:anyone, all permissions): access control is the deployment's, not ours.</summary>
    public void WriteOpenAcl()
    {
        WriteInt(1);
        WriteInt(31);
        WriteString("world");
        WriteString("anyone");
    }

    /// <summary>Reserves a 4-byte length prefix; <see cref="FinishFrame"/> fills it.</summary>
    public int BeginFrame()
    {
        var at = Length;
        WriteInt(0);
        return at;
    }

    public void FinishFrame(int at) => BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(at), Length - at - 4);

    private void Ensure(int count)
    {
        if (Length + count > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + count));
        }
    }
}
