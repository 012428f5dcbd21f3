// The C++ gRPC anchor: Echo.EchoBlob answers each request with itself (synchronous server, its
// default thread pool), on Debian's libgrpc++. Usage: grpc_echo_server PORT; prints "ready".
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>

#include "echo.grpc.pb.h"

namespace {

class EchoService final : public anchors::v1::Echo::Service {
    grpc::Status EchoBlob(grpc::ServerContext *, const anchors::v1::Blob *request,
                          anchors::v1::Blob *reply) override {
        *reply = *request;
        return grpc::Status::OK;
    }
};

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    EchoService service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(std::string("127.0.0.1:") + argv[1],
                             grpc::InsecureServerCredentials(), &port);
    builder.SetMaxReceiveMessageSize(-1);
    builder.SetMaxSendMessageSize(-1);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || port == 0) {
        std::fprintf(stderr, "grpc_echo_server: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    server->Wait();
    return 0;
}
