namespace Streams.Common.Server.Grpc;

/// <summary>
/// Names the rpcs of a generated service that the service serves with its own marshallers, through its own
/// <see cref="global::Grpc.AspNetCore.Server.Model.IServiceMethodProvider{TService}"/>: the generated binding of those rpcs
/// is skipped (so the route is not bound twice) and they need no override of the generated method.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class CustomMarshalledAttribute(params string[] methods) : Attribute
{
    public IReadOnlyList<string> Methods { get; } = methods;
}
