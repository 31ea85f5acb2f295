using System.Reflection;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// Binds a service derived from a Grpc.Tools-generated base, as Grpc.AspNetCore's own binder does (through the
/// generated <c>BindService</c>), with three differences:
/// <list type="bullet">
/// <item>an rpc of the .proto that the service does not override fails at start-up, naming it, instead of answering
/// UNIMPLEMENTED at run time;</item>
/// <item>a request message that does not parse is INVALID_ARGUMENT (the documented status), not UNKNOWN;</item>
/// <item>rpcs named by <see cref="CustomMarshalledAttribute"/> are left to the service's own provider.</item>
/// </list>
/// It replaces Grpc.AspNetCore's binder for every service (<see cref="GrpcHosting.AddStreamsGrpc"/>).
/// </summary>
internal sealed class GeneratedServiceMethodProvider<TService> : IServiceMethodProvider<TService>
    where TService : class
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context)
    {
        var (bindMethod, baseType) = FindBindMethod(typeof(TService));
        if (bindMethod is null)
        {
            return; // not a generated service: another provider binds it
        }

        var custom = typeof(TService).GetCustomAttribute<CustomMarshalledAttribute>()?.Methods ?? [];
        var binder = new Binder(context, baseType!, custom);
        bindMethod.Invoke(null, [binder, null]);
        if (binder.Unimplemented.Count > 0)
        {
            throw new InvalidOperationException(
                $"{typeof(TService).Name} does not implement {string.Join(", ", binder.Unimplemented)}, declared in its .proto. " +
                "Override each (an rpc deliberately left out throws RpcException(UNIMPLEMENTED) with a reason).");
        }
    }

    /// <summary>The generated static BindService(ServiceBinderBase, TBase) named by the base's [BindServiceMethod].</summary>
    internal static (MethodInfo? Method, Type? BaseType) FindBindMethod(Type serviceType)
    {
        for (var type = serviceType; type is not null; type = type.BaseType)
        {
            if (type.GetCustomAttribute<BindServiceMethodAttribute>(inherit: false) is { } bind)
            {
                var method = bind.BindType.GetMethod(bind.BindMethodName, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static, [typeof(ServiceBinderBase), type]);
                return (method, type);
            }
        }

        return (null, null);
    }

    private sealed class Binder(ServiceMethodProviderContext<TService> context, Type baseType, IReadOnlyList<string> custom) : ServiceBinderBase
    {
        public List<string> Unimplemented { get; } = [];

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            if (Find<UnaryServerMethod<TService, TRequest, TResponse>>(method, [typeof(TRequest), typeof(ServerCallContext)]) is { } invoker)
            {
                context.AddUnaryMethod(CheckedRequests.Of(method), Metadata(), invoker);
            }
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (Find<ServerStreamingServerMethod<TService, TRequest, TResponse>>(method, [typeof(TRequest), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext)]) is { } invoker)
            {
                context.AddServerStreamingMethod(CheckedRequests.Of(method), Metadata(), invoker);
            }
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (Find<ClientStreamingServerMethod<TService, TRequest, TResponse>>(method, [typeof(IAsyncStreamReader<TRequest>), typeof(ServerCallContext)]) is { } invoker)
            {
                context.AddClientStreamingMethod(CheckedRequests.Of(method), Metadata(), invoker);
            }
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            if (Find<DuplexStreamingServerMethod<TService, TRequest, TResponse>>(method, [typeof(IAsyncStreamReader<TRequest>), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext)]) is { } invoker)
            {
                context.AddDuplexStreamingMethod(CheckedRequests.Of(method), Metadata(), invoker);
            }
        }

        private static List<object> Metadata() => [new HttpMethodMetadata(["POST"], acceptCorsPreflight: true)];

        /// <summary>An open delegate to the service's override of the rpc, or null (recorded) when it has none.</summary>
        private TDelegate? Find<TDelegate>(IMethod method, Type[] parameters)
            where TDelegate : Delegate
        {
            if (custom.Contains(method.Name))
            {
                return null;
            }

            var implementation = typeof(TService).GetMethod(method.Name, BindingFlags.Public | BindingFlags.Instance, parameters);
            if (implementation is null || !implementation.IsVirtual || implementation.GetBaseDefinition().DeclaringType != baseType
                || implementation.DeclaringType == baseType)
            {
                Unimplemented.Add(method.FullName);
                return null;
            }

            return (TDelegate)Delegate.CreateDelegate(typeof(TDelegate), implementation);
        }
    }
}
