using System.Buffers;

namespace Streams.Bookie.Storage;

/// <summary>
/// A record that found the journal's memory full: its bytes, in a buffer rented from the shared pool that it owns
/// until it is enqueued (or failed), and the pending record its caller waits on.
/// </summary>
internal readonly record struct WaitingRecord(PendingRecord Pending, byte[] Buffer, int Length)
{
    public ReadOnlySpan<byte> Bytes => Buffer.AsSpan(0, Length);

    /// <summary>A waiting copy of <paramref name="record"/>.</summary>
    public static WaitingRecord Copy(PendingRecord pending, ReadOnlySpan<byte> record)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(record.Length);
        record.CopyTo(buffer);
        return new WaitingRecord(pending, buffer, record.Length);
    }

    public void Release() => ArrayPool<byte>.Shared.Return(Buffer);
}
