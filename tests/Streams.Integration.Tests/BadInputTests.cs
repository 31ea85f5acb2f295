using Google.Protobuf;
using Grpc.Core;
using Streams.Testing;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using Streams.Contracts.SegmentStore;

namespace Streams.Integration.Tests;

/// <summary>
/// Every kind of bad input gets a clear error with a gRPC status code, and none of it crashes the server:
/// each test ends by checking that the real server process still serves writes and reads.
/// </summary>
public sealed class BadInputTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>, IAsyncLifetime
{
    private const string Segment = "bad/input/0.#epoch.0";

    public async ValueTask InitializeAsync()
    {
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync("bad");
        await client.Streams.CreateStreamAsync("bad", "input", StreamConfig.Fixed(1));
    }

    public async ValueTask DisposeAsync()
    {
        Assert.False(fixture.Server.HasExited, "The server process died:\n" + fixture.Server.Output);
        await using var client = fixture.CreateClient();
        await using (var writer = await client.CreateWriterAsync("bad", "input", Serializers.Utf8))
        {
            await writer.WriteEventAsync("k", "still serving");
        }

        var values = new List<string>();
        await foreach (var e in client.CreateReader("bad", "input", Serializers.Utf8).ReadAllAsync())
        {
            values.Add(e.Value);
        }

        Assert.Contains("still serving", values);
    }

    [Fact]
    public async Task An_oversized_frame_is_refused_with_resource_exhausted_and_the_connection_closed()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendRawAsync([0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        var reply = await raw.ReceiveAsync();
        Assert.Equal((0L, (int)StatusCode.ResourceExhausted), (reply!.Error.RequestId, reply.Error.Code));
        Assert.Contains("exceeds the limit", reply.Error.Message);
        Assert.Null(await raw.ReceiveAsync());
    }

    [Fact]
    public async Task Garbage_inside_a_frame_is_invalid_argument()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendRawAsync([0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF]);
        var reply = await raw.ReceiveAsync();
        Assert.Equal((int)StatusCode.InvalidArgument, reply!.Error.Code);
        Assert.Contains("Malformed", reply.Error.Message);
        Assert.Null(await raw.ReceiveAsync());
    }

    [Fact]
    public async Task An_empty_request_is_invalid_argument()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendRawAsync([0, 0, 0, 0]);
        Assert.Equal((int)StatusCode.InvalidArgument, (await raw.ReceiveAsync())!.Error.Code);
    }

    [Fact]
    public async Task An_unknown_protocol_version_is_refused()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendAsync(new DataRequest { Hello = new Hello { ProtocolVersion = 99 } });
        var reply = await raw.ReceiveAsync();
        Assert.Equal((int)StatusCode.FailedPrecondition, reply!.Error.Code);
        Assert.Contains("version 99", reply.Error.Message);
    }

    [Fact]
    public async Task Appends_to_missing_or_malformed_segments_are_rejected()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        var writer = ByteString.CopyFrom(Guid.NewGuid().ToByteArray());
        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 1, WriterId = writer, Segment = "bad/input/7.#epoch.0" } });
        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 2, WriterId = writer, Segment = "not a segment" } });
        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 3, WriterId = ByteString.CopyFromUtf8("short"), Segment = Segment } });
        await raw.SendAsync(new DataRequest { Block = new AppendBlock { RequestId = 4, LastEventNumber = 0, EventCount = 1, Data = ByteString.CopyFrom(RawProtocolClient.Event("x")) } });

        var replies = new Dictionary<long, AppendRejected>();
        for (var i = 0; i < 4; i++)
        {
            var rejected = (await raw.ReceiveAsync())!.Rejected;
            replies[rejected.RequestId] = rejected;
        }

        Assert.Equal(AppendError.NoSuchSegment, replies[1].Error);
        Assert.Equal(AppendError.NoSuchSegment, replies[2].Error);
        Assert.Contains("not a segment name", replies[2].Message);
        Assert.Equal(AppendError.InvalidBlock, replies[3].Error);
        Assert.Contains("16 bytes", replies[3].Message);
        Assert.Equal(AppendError.NotSetUp, replies[4].Error);
    }

    [Fact]
    public async Task Malformed_blocks_are_rejected_and_nothing_is_appended()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendAsync(new DataRequest { Setup = new SetupAppend { RequestId = 1, WriterId = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Segment = Segment } });
        var setup = (await raw.ReceiveAsync())!.Setup;
        Assert.Equal(-1, setup.LastEventNumber);
        var lengthBefore = await LengthAsync();

        await raw.SendAsync(new DataRequest { Block = new AppendBlock { RequestId = 1, LastEventNumber = 0, EventCount = 2, Data = ByteString.CopyFrom(RawProtocolClient.Event("one")) } });
        await raw.SendAsync(new DataRequest { Block = new AppendBlock { RequestId = 1, LastEventNumber = 1, EventCount = 1, Data = ByteString.CopyFrom(RawProtocolClient.Event("half")[..5]) } });
        await raw.SendAsync(new DataRequest { Block = new AppendBlock { RequestId = 1, LastEventNumber = 2, EventCount = 1, Data = ByteString.CopyFrom([0x7F, 0, 0, 0, 1]) } });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(AppendError.InvalidBlock, (await raw.ReceiveAsync())!.Rejected.Error);
        }

        Assert.Equal(lengthBefore, await LengthAsync());
    }

    [Fact]
    public async Task Reads_of_missing_segments_or_bad_offsets_are_errors()
    {
        using var raw = await RawProtocolClient.ConnectAsync(fixture.Server.DataPort);
        await raw.SendAsync(new DataRequest { Read = new ReadSegmentRequest { RequestId = 7, Segment = "bad/input/9.#epoch.0", MaxBytes = 100 } });
        await raw.SendAsync(new DataRequest { Read = new ReadSegmentRequest { RequestId = 8, Segment = "../../etc/passwd", MaxBytes = 100 } });
        await raw.SendAsync(new DataRequest { Read = new ReadSegmentRequest { RequestId = 9, Segment = Segment, Offset = -5 } });
        await raw.SendAsync(new DataRequest { Read = new ReadSegmentRequest { RequestId = 10, Segment = Segment, Offset = 1L << 40 } });
        var errors = new Dictionary<long, ErrorReply>();
        for (var i = 0; i < 4; i++)
        {
            var error = (await raw.ReceiveAsync())!.Error;
            errors[error.RequestId] = error;
        }

        Assert.Equal((int)StatusCode.NotFound, errors[7].Code);
        Assert.Equal((int)StatusCode.InvalidArgument, errors[8].Code);
        Assert.Equal((int)StatusCode.InvalidArgument, errors[9].Code);
        Assert.Equal((int)StatusCode.InvalidArgument, errors[10].Code);
        Assert.Contains("beyond the end", errors[10].Message);
    }

    [Fact]
    public async Task Bad_grpc_requests_get_statuses()
    {
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        var store = new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel);
        var controller = new Contracts.Controller.Controller.ControllerClient(channel);
        await AssertStatus(StatusCode.InvalidArgument, () => store.ReadAsync(new ReadSegmentRequest { Segment = "nope" }).ResponseAsync);
        await AssertStatus(StatusCode.NotFound, () => store.GetSegmentInfoAsync(new SegmentRequest { Segment = "bad/input/5.#epoch.0" }).ResponseAsync);
        await AssertStatus(StatusCode.InvalidArgument, () => controller.CreateStreamAsync(new CreateStreamRequest { Scope = "bad", Stream = "a b" }).ResponseAsync);
        await AssertStatus(StatusCode.NotFound, () => controller.DescribeStreamAsync(new StreamRef { Scope = "bad", Stream = "missing" }).ResponseAsync);
        await AssertStatus(StatusCode.ResourceExhausted, () => controller.CreateScopeAsync(new ScopeRequest { Scope = new string('x', 20 * 1024 * 1024) }).ResponseAsync);
        await AssertStatus(StatusCode.AlreadyExists, () => store.CreateSegmentAsync(new CreateSegmentRequest { Segment = Segment }).ResponseAsync);
    }

    [Fact]
    public async Task Writing_to_a_missing_stream_fails_with_not_found()
    {
        await using var client = fixture.CreateClient();
        var error = await Assert.ThrowsAsync<StreamsException>(() => client.CreateWriterAsync("bad", "missing", Serializers.Utf8));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    private async Task<long> LengthAsync()
    {
        using var channel = GrpcChannels.Create(fixture.Server.ControllerUri);
        return (await new Contracts.SegmentStore.SegmentStore.SegmentStoreClient(channel).GetSegmentInfoAsync(new SegmentRequest { Segment = Segment })).Length;
    }

    private static async Task AssertStatus<T>(StatusCode code, Func<Task<T>> call) =>
        Assert.Equal(code, (await Assert.ThrowsAsync<RpcException>(call)).StatusCode);
}
