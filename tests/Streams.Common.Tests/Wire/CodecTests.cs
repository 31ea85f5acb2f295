using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Common.Tests.Wire;

/// <summary>The hand-written payload codecs must produce exactly what Google.Protobuf produces, and read it back.</summary>
public sealed class CodecTests
{
    [Fact]
    public void Append_block_envelope_matches_protobuf_for_any_fields() =>
        Prop.ForAll<long, long, byte[]>((requestId, eventNumber, data) =>
        {
            data ??= [];
            var count = (int)(eventNumber % 100_000);
            var conditional = requestId % 2 == 0;
            var expected = eventNumber ^ requestId;
            var sample = (ulong)(eventNumber & 0xFFFFFFFF) * (ulong)(count & 1);
            var header = new AppendBlockHeader(requestId, eventNumber, count, conditional ? expected : null, sample);
            var block = new AppendBlock { RequestId = requestId, LastEventNumber = eventNumber, EventCount = count, Data = ByteString.CopyFrom(data), KeySample = sample };
            if (conditional)
            {
                block.ExpectedOffset = expected;
            }

            var reference = new DataRequest { Block = block }.ToByteArray();
            var writer = new ArrayBufferWriter<byte>();
            AppendBlockCodec.WriteEnvelope(writer, header, new ReadOnlySequence<byte>(data));
            var ours = writer.WrittenSpan.ToArray();
            var sizeMatches = AppendBlockCodec.EnvelopeSize(header, data.Length) == reference.Length;
            var parsed = AppendBlockCodec.TryReadEnvelope(new ReadOnlySequence<byte>(reference), out var readHeader, out var readData);
            return sizeMatches && ours.AsSpan().SequenceEqual(reference) && parsed && readHeader == header && readData.ToArray().AsSpan().SequenceEqual(data);
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Read_reply_envelope_matches_protobuf_for_any_fields() =>
        Prop.ForAll<long, long, byte[]>((requestId, offset, data) =>
        {
            data ??= [];
            var length = offset + data.Length;
            var isSealed = requestId % 3 == 0;
            var header = new ReadReplyHeader(requestId, ReadStatus.Ok, offset, length, offset / 2, isSealed);
            var reference = new DataReply
            {
                Read = new ReadSegmentReply
                {
                    RequestId = requestId, Status = ReadStatus.Ok, Offset = offset, SegmentLength = length, StartOffset = offset / 2,
                    Sealed = isSealed, Data = ByteString.CopyFrom(data),
                },
            }.ToByteArray();
            var writer = new ArrayBufferWriter<byte>();
            ReadReplyCodec.WriteEnvelope(writer, header, new ReadOnlySequence<byte>(data));
            var parsed = ReadReplyCodec.TryReadEnvelope(new ReadOnlySequence<byte>(reference), out var readHeader, out var readData);
            return ReadReplyCodec.EnvelopeSize(header, data.Length) == reference.Length
                && writer.WrittenSpan.SequenceEqual(reference)
                && parsed && readHeader == header && readData.ToArray().AsSpan().SequenceEqual(data);
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Block_data_is_a_slice_of_the_input_not_a_copy()
    {
        var payload = new byte[1000];
        var message = new DataRequest { Block = new AppendBlock { RequestId = 1, EventCount = 1, Data = ByteString.CopyFrom(payload) } }.ToByteArray();
        var input = new ReadOnlySequence<byte>(message);
        Assert.True(AppendBlockCodec.TryReadEnvelope(input, out _, out var data));
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data.First, out var segment));
        Assert.Same(message, segment.Array);
    }

    [Fact]
    public void Other_requests_are_left_to_protobuf()
    {
        var setup = new DataRequest { Setup = new SetupAppend { RequestId = 3, Segment = "a/b/0.#epoch.0" } }.ToByteArray();
        Assert.False(AppendBlockCodec.TryReadEnvelope(new ReadOnlySequence<byte>(setup), out _, out _));
    }

    [Fact]
    public void Truncated_blocks_are_reported_as_malformed()
    {
        // An envelope whose block overruns the message is not taken as a block (the protobuf parser then refuses it)...
        var message = new DataRequest { Block = new AppendBlock { RequestId = 1, EventCount = 1, Data = ByteString.CopyFrom(new byte[50]) } }.ToByteArray();
        Assert.False(AppendBlockCodec.TryReadEnvelope(new ReadOnlySequence<byte>(message[..^10]), out _, out _));
        Assert.Throws<InvalidProtocolBufferException>(() => DataRequest.Parser.ParseFrom(message[..^10]));

        // ...and a block whose data field overruns the block is malformed.
        var block = new AppendBlock { RequestId = 1, Data = ByteString.CopyFrom(new byte[50]) }.ToByteArray()[..^10];
        Assert.Throws<InvalidDataException>(() => AppendBlockCodec.Read(new ReadOnlySequence<byte>(block), out _, out _));
    }
}
