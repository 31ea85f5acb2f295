using Streams.Client.Tests.Fakes;

namespace Streams.Client.Tests.Internal;

/// <summary>A controller call the caller cancels ends as a cancellation, not as a controller failure.</summary>
public sealed class ControllerCallCancellationTests : FakeClusterTest
{
    [Fact]
    public async Task A_cancelled_controller_call_throws_OperationCanceledException_not_StreamsException()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        // gRPC reports a call cancelled by its caller as status CANCELLED; a read loop stopped by a revoke must not
        // take that for an error of the controller and fail the reader.
        var thrown = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.Streams.DescribeStreamAsync(Cluster.Controller.Scope, Cluster.Controller.Stream, cancelled.Token));
        Assert.Equal(cancelled.Token, thrown.CancellationToken);
        Assert.IsNotType<StreamsException>(thrown.InnerException);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.DescribeReaderGroupAsync("test", "g", cancelled.Token));
    }
}
