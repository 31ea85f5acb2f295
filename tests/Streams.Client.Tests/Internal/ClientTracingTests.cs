using System.Diagnostics;
using Streams.Client.Internal;

namespace Streams.Client.Tests.Internal;

public sealed class ClientTracingTests
{
    [Fact]
    public void Without_a_listener_a_call_starts_no_span()
    {
        Assert.False(ClientTracing.Source.HasListeners());
        Assert.Null(ClientTracing.StartCall("CreateStreamAsync"));
    }

    [Fact]
    public void A_call_span_is_named_after_the_sdk_method()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == StreamsClient.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);

        using var call = ClientTracing.StartCall("CreateStreamAsync");
        Assert.NotNull(call);
        Assert.Equal("CreateStream", call.OperationName);
        Assert.Equal(ActivityKind.Client, call.Kind);
        Assert.Equal(StreamsClient.ActivitySourceName, call.Source.Name);
    }
}
