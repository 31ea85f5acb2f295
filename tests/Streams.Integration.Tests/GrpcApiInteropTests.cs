using System.Globalization;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>
/// A foreign gRPC stack against a real <c>streams standalone</c> process, through the real APIs: grpc-js with the
/// repository's .proto files loaded at run time and the event framing implemented from docs/wire-protocol.md alone
/// (tests/interop/streams-client.js). It drives the controller, appends over the Append bidi stream, reads, hits every
/// documented failure, and checks health and reflection. Where data crosses stacks, the .NET SDK reads what grpc-js
/// wrote and grpc-js reads what the SDK wrote, byte for byte.
/// </summary>
public sealed class GrpcApiInteropTests(StandaloneProcessFixture fixture) : IClassFixture<StandaloneProcessFixture>
{
    private const string Script = "streams-client.js";

    private const string ReadMethod = "/streams.segmentstore.v1.SegmentStore/Read";

    /// <summary>The service names the standalone serves, each with its own health status.</summary>
    private static readonly string[] RoleServices =
        ["streams.controller.v1.Controller", "streams.controller.v1.ReaderGroups", "streams.controller.v1.Transactions", "streams.segmentstore.v1.SegmentStore", "externalscaler.ExternalScaler"];

    [Fact]
    public async Task Grpcjs_creates_lists_and_describes_a_scope_and_a_stream()
    {
        var result = await RunAsync("controller", "js-controller", "orders", "3");

        Assert.True(result.GetProperty("scopeCreated").GetBoolean());
        Assert.False(result.GetProperty("scopeCreatedAgain").GetBoolean());
        Assert.True(result.GetProperty("streamCreated").GetBoolean());
        Assert.False(result.GetProperty("streamCreatedAgain").GetBoolean());
        Assert.Contains("js-controller", Strings(result.GetProperty("scopes")));
        Assert.Equal(["orders"], Strings(result.GetProperty("streams")));

        var info = result.GetProperty("info");
        Assert.Equal(
            ("js-controller", "orders", "STREAM_STATE_ACTIVE", 0, "fixed", 3, false),
            (info.GetProperty("scope").GetString(), info.GetProperty("stream").GetString(), info.GetProperty("state").GetString(),
                info.GetProperty("epoch").GetInt32(), info.GetProperty("scaling").GetString(), info.GetProperty("segmentCount").GetInt32(),
                info.GetProperty("hasRetention").GetBoolean()));
        var createdAt = DateTimeOffset.FromUnixTimeMilliseconds(info.GetProperty("createdAtUnixMs").GetInt64());
        Assert.InRange(createdAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));

        // What grpc-js was told is what the SDK is told.
        await using var client = fixture.CreateClient();
        var described = await client.Streams.DescribeStreamAsync("js-controller", "orders", TestContext.Current.CancellationToken);
        var expected = described.ActiveSegments.Select(s => (s.Name, s.Id, s.KeyStart, s.KeyEnd)).ToList();
        Assert.Equal(["js-controller/orders/0.#epoch.0", "js-controller/orders/1.#epoch.0", "js-controller/orders/2.#epoch.0"], expected.Select(s => s.Name));
        Assert.Equal(expected, Ranges(info.GetProperty("activeSegments")));
        Assert.Equal(expected, Ranges(result.GetProperty("active").GetProperty("segments")));
        Assert.Equal("STREAM_STATE_ACTIVE", result.GetProperty("active").GetProperty("state").GetString());

        var endpoints = result.GetProperty("endpoints").EnumerateArray().ToList();
        Assert.Equal(expected.Select(s => s.Name), endpoints.Select(e => e.GetProperty("segment").GetString()));
        Assert.All(endpoints, e => Assert.Equal(
            ("127.0.0.1", fixture.Server.DataPort, fixture.Server.ControllerUri),
            (e.GetProperty("host").GetString(), e.GetProperty("dataPort").GetInt32(), e.GetProperty("grpcUri").GetString())));
    }

    [Fact]
    public async Task Grpcjs_appends_framed_events_reads_them_back_and_the_sdk_reads_the_same_bytes()
    {
        var ct = TestContext.Current.CancellationToken;
        await CreateStreamAsync("js-append", "events", 2, ct);

        var events = TestEvents();
        using var dir = new TempDirectory("grpcjs-events");
        var file = dir.Sub("events.json");
        await File.WriteAllBytesAsync(file, EventsJson(events), ct);

        var result = await RunAsync("appendRead", "js-append", "events", file);

        Assert.All(result.GetProperty("callStatuses").EnumerateArray(), s => Assert.Equal(0, s.GetProperty("code").GetInt32()));
        var second = result.GetProperty("second");
        var segments = result.GetProperty("segments").EnumerateArray().ToList();
        Assert.Equal(2, segments.Count);
        Assert.Equal(Enumerable.Range(0, events.Count), segments.SelectMany(s => s.GetProperty("eventIndexes").EnumerateArray().Select(i => i.GetInt32())).Order());

        var written = new Dictionary<string, List<TestEvent>>();
        foreach (var segment in segments)
        {
            var name = segment.GetProperty("segment").GetString()!;
            var mine = segment.GetProperty("eventIndexes").EnumerateArray().Select(i => events[i.GetInt32()]).ToList();
            written[name] = mine;
            Assert.Equal(name, segment.GetProperty("setupSegment").GetString());
            Assert.Equal(-1, segment.GetProperty("setupLastEventNumber").GetInt64());

            // Event numbers 0, 1, 2, ... per segment; each block ends at the sum of its events' frame sizes.
            var blocks = segment.GetProperty("blocks").EnumerateArray().Select(b => (Last: b.GetProperty("lastEventNumber").GetInt64(), Count: b.GetProperty("eventCount").GetInt32())).ToList();
            var ends = new List<long>();
            var (number, length, next) = (-1L, 0L, 0);
            foreach (var (last, count) in blocks)
            {
                number += count;
                Assert.Equal(number, last);
                length += mine.Skip(next).Take(count).Sum(e => e.FrameSize);
                next += count;
                ends.Add(length);
            }

            // The second call appended the last block of the first segment; the acknowledgements here are of the first call.
            var pipelined = name == second.GetProperty("segment").GetString() ? blocks.Count - 1 : blocks.Count;
            var acks = segment.GetProperty("acks").EnumerateArray().Select(a => (Last: a.GetProperty("lastEventNumber").GetInt64(), Length: a.GetProperty("segmentLength").GetInt64())).ToList();
            Assert.NotEmpty(acks);
            Assert.Equal(blocks[pipelined - 1].Last, acks[^1].Last);
            for (var i = 0; i < acks.Count; i++)
            {
                Assert.True(i == 0 || acks[i].Last > acks[i - 1].Last, $"Acknowledgements on {name} go backwards: {string.Join(", ", acks)}");
                var block = blocks.FindIndex(b => b.Last == acks[i].Last);
                Assert.True(block >= 0, $"An acknowledgement on {name} names event {acks[i].Last}, which ends no block.");
                Assert.Equal(ends[block], acks[i].Length);
            }

            if (pipelined < blocks.Count)
            {
                // Set up again: the last durable event number. Re-sent blocks are acknowledged, not appended again, with
                // the writer's latest number (acknowledgements never go backwards) and the current length. A conditional
                // append at a wrong offset is refused with the real length; at the right one it lands.
                var before = ends[pipelined - 1];
                Assert.Equal(blocks[pipelined - 1].Last, second.GetProperty("setupLastEventNumber").GetInt64());
                foreach (var duplicate in new[] { second.GetProperty("firstDuplicate"), second.GetProperty("duplicate") })
                {
                    Assert.Equal((blocks[pipelined - 1].Last, before), (duplicate.GetProperty("lastEventNumber").GetInt64(), duplicate.GetProperty("segmentLength").GetInt64()));
                }

                var refused = second.GetProperty("conditionFailed");
                Assert.Equal(("APPEND_ERROR_CONDITION_FAILED", blocks[^1].Last, before), (refused.GetProperty("error").GetString(), refused.GetProperty("lastEventNumber").GetInt64(), refused.GetProperty("segmentLength").GetInt64()));
                Assert.False(string.IsNullOrWhiteSpace(refused.GetProperty("message").GetString()));
                var conditional = second.GetProperty("conditionalAck");
                Assert.Equal((blocks[^1].Last, ends[^1]), (conditional.GetProperty("lastEventNumber").GetInt64(), conditional.GetProperty("segmentLength").GetInt64()));
                Assert.Equal(0, second.GetProperty("status").GetProperty("code").GetInt32());
            }

            // grpc-js read back exactly what it wrote, in reads of 7, 100, 1000 and 65536 bytes that end inside frames.
            var read = segment.GetProperty("read");
            Assert.Empty(Strings(read.GetProperty("problems")));
            Assert.Equal(mine, Events(read.GetProperty("events")));
            Assert.Equal(ends[^1], read.GetProperty("endOffset").GetInt64());
            Assert.InRange(read.GetProperty("reads").GetInt32(), 3, 2000);
            Assert.Equal(("READ_STATUS_AT_TAIL", "READ_STATUS_AT_TAIL"), (read.GetProperty("tailStatus").GetString(), read.GetProperty("tailWaitStatus").GetString()));
            Assert.InRange(read.GetProperty("tailWaitMs").GetInt32(), 250, 10_000);
            var info = segment.GetProperty("info");
            Assert.Equal((ends[^1], 0L, false), (info.GetProperty("length").GetInt64(), info.GetProperty("startOffset").GetInt64(), info.GetProperty("sealed").GetBoolean()));
        }

        // The SDK, on either carrier, reads the same events from the same segments.
        foreach (var transport in new[] { DataTransport.Raw, DataTransport.Grpc })
        {
            Assert.Equal(written, await ReadWithSdkAsync("js-append", "events", transport, ct));
        }
    }

    [Fact]
    public async Task Grpcjs_reads_and_unframes_what_the_sdk_wrote()
    {
        var ct = TestContext.Current.CancellationToken;
        await CreateStreamAsync("js-read", "events", 2, ct);
        await using var client = fixture.CreateClient();
        var big = new byte[200_000];
        new Random(11).NextBytes(big);
        await using (var keyed = await client.CreateWriterAsync("js-read", "events", Serializers.Bytes, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            for (var i = 0; i < 20; i++)
            {
                await keyed.WriteEventAsync($"key-{i % 5} ✓", Encoding.UTF8.GetBytes($"keyed {i} ünïcødé"), ct);
            }

            await keyed.WriteEventAsync("big", big, ct);
        }

        await using (var plain = await client.CreateWriterAsync("js-read", "events", Serializers.Bytes, cancellationToken: ct))
        {
            for (var i = 0; i < 10; i++)
            {
                await plain.WriteEventAsync($"key-{i}", Encoding.UTF8.GetBytes($"plain {i}"), ct);
            }

            await plain.WriteEventAsync("empty", [], ct);
        }

        var result = await RunAsync("readStream", "js-read", "events");

        var sdk = await ReadWithSdkAsync("js-read", "events", DataTransport.Raw, ct);
        var js = new Dictionary<string, List<TestEvent>>();
        foreach (var segment in result.GetProperty("segments").EnumerateArray())
        {
            Assert.Empty(Strings(segment.GetProperty("read").GetProperty("problems")));
            var events = Events(segment.GetProperty("read").GetProperty("events"));
            if (events.Count > 0)
            {
                js[segment.GetProperty("segment").GetString()!] = events;
            }
        }

        Assert.Equal(sdk, js);
        Assert.Equal(32, js.Values.Sum(e => e.Count));
        Assert.Contains(new TestEvent("big", Convert.ToBase64String(big)), js.Values.SelectMany(e => e));
        Assert.Contains(new TestEvent(null, string.Empty), js.Values.SelectMany(e => e));
    }

    [Fact]
    public async Task Grpcjs_sees_a_sealed_stream_with_no_active_segments_and_reads_it_to_its_end()
    {
        var ct = TestContext.Current.CancellationToken;
        await CreateStreamAsync("js-sealed", "events", 3, ct);
        await using (var client = fixture.CreateClient())
        await using (var writer = await client.CreateWriterAsync("js-sealed", "events", Serializers.Bytes, new EventWriterOptions { StoreRoutingKeys = true }, ct))
        {
            for (var i = 0; i < 24; i++)
            {
                await writer.WriteEventAsync($"key-{i}", Encoding.UTF8.GetBytes($"event {i}"), ct);
            }
        }

        var result = await RunAsync("sealed", "js-sealed", "events");

        Assert.Equal(("STREAM_STATE_SEALED", "STREAM_STATE_SEALED"), (result.GetProperty("sealedState").GetString(), result.GetProperty("describedState").GetString()));
        var active = result.GetProperty("active");
        Assert.Equal("STREAM_STATE_SEALED", active.GetProperty("state").GetString());
        Assert.Empty(Strings(active.GetProperty("segments")));

        // DescribeStream names the segments that hold the data; each resolves, is sealed and reads to its end.
        var segments = result.GetProperty("segments").EnumerateArray().ToList();
        Assert.Equal(["js-sealed/events/0.#epoch.0", "js-sealed/events/1.#epoch.0", "js-sealed/events/2.#epoch.0"], segments.Select(s => s.GetProperty("segment").GetString()));
        var js = new Dictionary<string, List<TestEvent>>();
        foreach (var segment in segments)
        {
            Assert.True(segment.GetProperty("sealed").GetBoolean());
            var read = segment.GetProperty("read");
            Assert.Empty(Strings(read.GetProperty("problems")));
            Assert.Equal(("READ_STATUS_END_OF_SEGMENT", "READ_STATUS_END_OF_SEGMENT"), (read.GetProperty("tailStatus").GetString(), read.GetProperty("tailWaitStatus").GetString()));
            var events = Events(read.GetProperty("events"));
            if (events.Count > 0)
            {
                js[segment.GetProperty("segment").GetString()!] = events;
            }
        }

        Assert.Equal(24, js.Values.Sum(e => e.Count));
        foreach (var transport in new[] { DataTransport.Raw, DataTransport.Grpc })
        {
            Assert.Equal(js, await ReadWithSdkAsync("js-sealed", "events", transport, ct));
        }

        // A setup on a sealed segment is answered; its block is refused.
        var append = result.GetProperty("append");
        Assert.Equal(-1, append.GetProperty("setupLastEventNumber").GetInt64());
        Assert.Equal("APPEND_ERROR_SEGMENT_SEALED", append.GetProperty("block").GetProperty("error").GetString());
        Assert.Equal(0, append.GetProperty("status").GetProperty("code").GetInt32());

        // KEDA: no segment to read in parallel, and nothing to keep readers up for.
        var scaler = result.GetProperty("scaler");
        Assert.False(scaler.GetProperty("isActive").GetProperty("result").GetBoolean());
        Assert.False(scaler.GetProperty("streamIsActive").GetProperty("result").GetBoolean());
        var value = Assert.Single(scaler.GetProperty("metrics").GetProperty("values").EnumerateArray());
        Assert.Equal((0L, 0.0), (value.GetProperty("metricValue").GetInt64(), value.GetProperty("metricValueFloat").GetDouble()));
    }

    [Fact]
    public async Task Grpcjs_asks_the_keda_scaler_what_keda_asks_and_bad_triggers_are_refused_alike()
    {
        // '_', '.' and capitals are valid in stream names, not in metric names.
        await CreateStreamAsync("js-scaler", "Orders_v2.EU", 2, TestContext.Current.CancellationToken);

        var result = await RunAsync("scaler", "js-scaler", "Orders_v2.EU");

        var answers = result.GetProperty("answers");
        foreach (var (trigger, target) in new[] { ("good", 1.0), ("twoPerReplica", 2.0) })
        {
            var answer = answers.GetProperty(trigger);
            Assert.True(answer.GetProperty("isActive").GetProperty("result").GetBoolean(), trigger);
            Assert.True(answer.GetProperty("streamIsActive").GetProperty("result").GetBoolean(), trigger);
            var spec = Assert.Single(answer.GetProperty("metricSpec").GetProperty("specs").EnumerateArray());
            Assert.Equal(("streams-segments-js-scaler-orders-v2-eu", (long)target, target),
                (spec.GetProperty("metricName").GetString(), spec.GetProperty("targetSize").GetInt64(), spec.GetProperty("targetSizeFloat").GetDouble()));
            var value = Assert.Single(answer.GetProperty("metrics").GetProperty("values").EnumerateArray());
            Assert.Equal((2L, 2.0), (value.GetProperty("metricValue").GetInt64(), value.GetProperty("metricValueFloat").GetDouble()));
        }

        var refused = new Dictionary<string, StatusCode>
        {
            ["invalidScope"] = StatusCode.InvalidArgument,
            ["invalidStream"] = StatusCode.InvalidArgument,
            ["noStreamKey"] = StatusCode.InvalidArgument,
            ["zeroPerReplica"] = StatusCode.InvalidArgument,
            ["nanPerReplica"] = StatusCode.InvalidArgument,
            ["missingStream"] = StatusCode.NotFound,
            ["missingScope"] = StatusCode.NotFound,
        };
        foreach (var (trigger, code) in refused)
        {
            foreach (var call in new[] { "isActive", "streamIsActive", "metricSpec", "metrics" })
            {
                var answer = answers.GetProperty(trigger).GetProperty(call);
                Assert.Equal((trigger, call, code), (trigger, call, (StatusCode)answer.GetProperty("code").GetInt32()));
                Assert.False(string.IsNullOrWhiteSpace(answer.GetProperty("details").GetString()), $"{trigger} {call}: the status has no message.");
            }
        }
    }

    [Fact]
    public async Task Grpcjs_gets_the_documented_status_codes_with_messages()
    {
        await CreateStreamAsync("js-errors", "input", 1, TestContext.Current.CancellationToken);

        var result = await RunAsync("errors", "js-errors", "input");

        var expected = new Dictionary<string, StatusCode>
        {
            ["invalidScopeName"] = StatusCode.InvalidArgument,
            ["invalidStreamName"] = StatusCode.InvalidArgument,
            ["zeroSegments"] = StatusCode.InvalidArgument,
            ["streamInMissingScope"] = StatusCode.NotFound,
            ["describeMissingStream"] = StatusCode.NotFound,
            ["listStreamsOfMissingScope"] = StatusCode.NotFound,
            ["endpointOfInvalidSegment"] = StatusCode.InvalidArgument,
            ["endpointOfMissingSegment"] = StatusCode.NotFound,
            ["endpointOfMissingEpoch"] = StatusCode.NotFound,
            ["endpointOfMissingStream"] = StatusCode.NotFound,
            ["deleteUnsealedStream"] = StatusCode.FailedPrecondition,
            ["deleteNonEmptyScope"] = StatusCode.FailedPrecondition,
            ["readMissingSegment"] = StatusCode.NotFound,
            ["readInvalidSegment"] = StatusCode.InvalidArgument,
            ["readPastTheEnd"] = StatusCode.InvalidArgument,
            ["readNegativeOffset"] = StatusCode.InvalidArgument,
            ["infoOfMissingSegment"] = StatusCode.NotFound,
            ["createExistingSegment"] = StatusCode.AlreadyExists,
            ["oversizedRequest"] = StatusCode.ResourceExhausted,
        };
        var statuses = result.GetProperty("statuses");
        Assert.Equal(expected.Keys.Order(), statuses.EnumerateObject().Select(p => p.Name).Order());
        foreach (var (name, code) in expected)
        {
            var status = statuses.GetProperty(name);
            Assert.Equal((name, code), (name, (StatusCode)status.GetProperty("code").GetInt32()));
            Assert.False(string.IsNullOrWhiteSpace(status.GetProperty("details").GetString()), $"{name}: the status has no message.");
        }

        // A missing segment is named, with what the stream has instead.
        Assert.Contains("has no segment 9 of epoch 0: epoch 0 has segment 0.", statuses.GetProperty("endpointOfMissingSegment").GetProperty("details").GetString());
        Assert.Contains("has no segment 0 of epoch 1: the stream is at epoch 0.", statuses.GetProperty("endpointOfMissingEpoch").GetProperty("details").GetString());

        var rejections = new Dictionary<string, (string Error, long EventNumber)>
        {
            ["notSetUp"] = ("APPEND_ERROR_NOT_SET_UP", 3),
            ["shortWriterId"] = ("APPEND_ERROR_INVALID_BLOCK", -1),
            ["missingSegment"] = ("APPEND_ERROR_NO_SUCH_SEGMENT", -1),
            ["halfAnEvent"] = ("APPEND_ERROR_INVALID_BLOCK", 0),
            ["wrongEventCount"] = ("APPEND_ERROR_INVALID_BLOCK", 0),
            ["negativeEventNumber"] = ("APPEND_ERROR_INVALID_BLOCK", -1),
            ["emptyBlock"] = ("APPEND_ERROR_INVALID_BLOCK", 0),
            ["keyNotUtf8"] = ("APPEND_ERROR_INVALID_BLOCK", 1),
            ["wrongExpectedOffset"] = ("APPEND_ERROR_CONDITION_FAILED", 0),
        };
        var append = result.GetProperty("append");
        Assert.Equal(rejections.Keys.Order(), append.EnumerateObject().Select(p => p.Name).Order());
        foreach (var (name, (error, eventNumber)) in rejections)
        {
            var rejected = append.GetProperty(name);
            Assert.Equal((name, error, eventNumber), (name, rejected.GetProperty("error").GetString(), rejected.GetProperty("lastEventNumber").GetInt64()));
            Assert.False(string.IsNullOrWhiteSpace(rejected.GetProperty("message").GetString()), $"{name}: the rejection has no message.");
        }

        Assert.Contains("routing key stored with event 1 (counting from 0) is not valid UTF-8", append.GetProperty("keyNotUtf8").GetProperty("message").GetString());

        // The segment's real length comes with a failed condition; none of the refused blocks was appended; the call
        // itself stays healthy through all of it.
        Assert.Equal(0, append.GetProperty("wrongExpectedOffset").GetProperty("segmentLength").GetInt64());
        Assert.Equal(-1, result.GetProperty("setupLastEventNumber").GetInt64());
        Assert.Equal(0, result.GetProperty("segmentLengthAfter").GetInt64());
        Assert.Equal(0, result.GetProperty("appendCallStatus").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task Grpcjs_malformed_messages_are_invalid_argument_on_every_rpc_but_read()
    {
        var statuses = await MalformedStatusesAsync();

        Assert.True(statuses.Count > 25, $"Only {statuses.Count} rpcs were tried.");
        foreach (var (method, (code, details)) in statuses.Where(s => s.Key != ReadMethod))
        {
            Assert.Equal((method, StatusCode.InvalidArgument), (method, code));
            Assert.Contains("Malformed", details, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Grpcjs_malformed_read_request_is_invalid_argument()
    {
        var (code, details) = (await MalformedStatusesAsync())[ReadMethod];

        Assert.Equal(StatusCode.InvalidArgument, code);
        Assert.Contains("Malformed", details, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Grpcjs_checks_and_watches_health_of_every_service()
    {
        var result = await RunAsync("health", RoleServices);

        var checks = result.GetProperty("checks");
        foreach (var service in RoleServices.Prepend(string.Empty))
        {
            Assert.Equal((service, "SERVING"), (service, checks.GetProperty(service).GetString()));
        }

        Assert.Equal(StatusCode.NotFound, (StatusCode)result.GetProperty("unknown").GetProperty("code").GetInt32());
        Assert.Equal("SERVING", Strings(result.GetProperty("watch").GetProperty("statuses")).LastOrDefault());
        Assert.Equal(["SERVICE_UNKNOWN"], Strings(result.GetProperty("watchUnknown").GetProperty("statuses")));
    }

    [Fact]
    public async Task Grpcjs_lists_services_and_calls_the_controller_through_reflection_alone()
    {
        await using (var client = fixture.CreateClient())
        {
            await client.Streams.CreateScopeAsync("js-reflection", TestContext.Current.CancellationToken);
        }

        var result = await RunAsync("reflection");

        string[] expected = [.. RoleServices, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
        Assert.Equal(expected.Order(), Strings(result.GetProperty("services")).Order());
        Assert.Equal(expected.Order(), Strings(result.GetProperty("servicesV1alpha")).Order());
        Assert.Contains("js-reflection", Strings(result.GetProperty("scopes")));
        Assert.Equal(
            ["Append", "Read", "GetSegmentInfo", "CreateSegment", "SealSegment", "TruncateSegment", "DeleteSegment", "GetWriterRecords", "InheritWriterRecords", "MergeSegments"],
            Strings(result.GetProperty("segmentStoreMethods")));
        Assert.True(result.GetProperty("missingSymbolFails").GetBoolean());
    }

    private Task<JsonElement> RunAsync(string scenario, params string[] args) =>
        Node.RunJsonAsync(Script, [fixture.Server.GrpcPort.ToString(CultureInfo.InvariantCulture), scenario, .. args]);

    /// <summary>A scope and a stream of fixed segments, created with the SDK.</summary>
    private async Task CreateStreamAsync(string scope, string stream, int segments, CancellationToken ct)
    {
        await using var client = fixture.CreateClient();
        await client.Streams.CreateScopeAsync(scope, ct);
        await client.Streams.CreateStreamAsync(scope, stream, StreamConfig.Fixed(segments), ct);
    }

    private async Task<Dictionary<string, (StatusCode Code, string Details)>> MalformedStatusesAsync()
    {
        var result = await RunAsync("malformed");
        return result.GetProperty("statuses").EnumerateObject().ToDictionary(
            p => p.Name, p => ((StatusCode)p.Value.GetProperty("code").GetInt32(), p.Value.GetProperty("details").GetString() ?? string.Empty));
    }

    /// <summary>Every segment's events as the SDK reads them, in segment order.</summary>
    private async Task<Dictionary<string, List<TestEvent>>> ReadWithSdkAsync(string scope, string stream, DataTransport transport, CancellationToken ct)
    {
        await using var client = StreamsClient.Create(new StreamsClientOptions
        {
            ControllerUri = fixture.Server.ControllerUri, Transport = transport, ReconnectTimeout = TimeSpan.FromSeconds(10),
        });
        var read = new Dictionary<string, List<TestEvent>>();
        await foreach (var e in client.CreateReader(scope, stream, Serializers.Bytes).ReadAllAsync(ct))
        {
            if (!read.TryGetValue(e.Position.Segment, out var events))
            {
                read[e.Position.Segment] = events = [];
            }

            events.Add(new TestEvent(e.RoutingKey, Convert.ToBase64String(e.Value)));
        }

        return read;
    }

    /// <summary>Keys stored and not, empty and non-ASCII; payloads empty, binary, UTF-8 and one of 300 KB.</summary>
    private static List<TestEvent> TestEvents()
    {
        var big = new byte[300_000];
        new Random(7).NextBytes(big);
        var events = new List<TestEvent>
        {
            new("user-1", Base64("hello from grpc-js")),
            new(null, Convert.ToBase64String([.. Enumerable.Range(0, 256).Select(i => (byte)i)])),
            new("schlüssel ✓", Base64("ünïcødé ✓")),
            new(string.Empty, Base64("an empty key, stored")),
            new(null, string.Empty),
            new("big", Convert.ToBase64String(big)),
        };
        for (var i = 0; i < 30; i++)
        {
            events.Add(i % 3 == 0 ? new TestEvent(null, Base64($"event {i}")) : new TestEvent($"k{i}", Base64($"event {i}")));
        }

        return events;
    }

    private static byte[] EventsJson(List<TestEvent> events)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var e in events)
            {
                json.WriteStartObject();
                json.WriteString("key", e.Key);
                json.WriteString("payload", e.Payload);
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return buffer.ToArray();
    }

    private static List<TestEvent> Events(JsonElement array) =>
        [.. array.EnumerateArray().Select(e => new TestEvent(e.GetProperty("key").GetString(), e.GetProperty("payload").GetString()!))];

    private static List<(string Name, long Id, double KeyStart, double KeyEnd)> Ranges(JsonElement array) =>
        [.. array.EnumerateArray().Select(s => (
            s.GetProperty("segment").GetString()!,
            long.Parse(s.GetProperty("segmentId").GetString()!, CultureInfo.InvariantCulture), // int64 arrives as a string (proto-loader longs: String)
            s.GetProperty("keyStart").GetDouble(),
            s.GetProperty("keyEnd").GetDouble()))];

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    /// <summary>An event as both stacks see it: the stored routing key (null if none) and the payload in base64.</summary>
    private sealed record TestEvent(string? Key, string Payload)
    {
        /// <summary>Its frame's size by docs/wire-protocol.md: a 4-byte header, a stored key's 2-byte length and bytes, the payload.</summary>
        public int FrameSize => 4 + (Key is null ? 0 : 2 + Encoding.UTF8.GetByteCount(Key)) + Convert.FromBase64String(Payload).Length;
    }
}
