#!/usr/bin/env python3
"""Full-size weight files with random values for docs/benchmarks.md "Reading pretrained weights":
resnet50.pth (torchvision names, torch.save), R-50-p4.pkl and R-50-p2.pkl (Caffe2 names as in
detectron2's R-50.pkl, pickled at protocol 4 and 2). Writes into the current directory.
"""
import torch, pickle, numpy as np, collections
g = torch.Generator().manual_seed(0)
sd = collections.OrderedDict()
def bn(p, c):
    sd[p+".weight"]=torch.rand(c); sd[p+".bias"]=torch.rand(c); sd[p+".running_mean"]=torch.rand(c); sd[p+".running_var"]=torch.rand(c); sd[p+".num_batches_tracked"]=torch.tensor(0)
sd["conv1.weight"]=torch.randn(64,3,7,7); bn("bn1",64)
inp=64
for i,(n,w) in enumerate(zip([3,4,6,3],[64,128,256,512])):
    for b in range(n):
        p=f"layer{i+1}.{b}."
        sd[p+"conv1.weight"]=torch.randn(w,inp,1,1); bn(p+"bn1",w)
        sd[p+"conv2.weight"]=torch.randn(w,w,3,3); bn(p+"bn2",w)
        sd[p+"conv3.weight"]=torch.randn(4*w,w,1,1); bn(p+"bn3",4*w)
        if b==0:
            sd[p+"downsample.0.weight"]=torch.randn(4*w,inp,1,1); bn(p+"downsample.1",4*w)
        inp=4*w
sd["fc.weight"]=torch.randn(1000,2048); sd["fc.bias"]=torch.randn(1000)
torch.save(sd, "resnet50.pth")
# Caffe2 names, as R-50.pkl
c2={}
c2["conv1_w"]=sd["conv1.weight"].numpy(); c2["res_conv1_bn_s"]=sd["bn1.weight"].numpy(); c2["res_conv1_bn_b"]=sd["bn1.bias"].numpy()
for k,v in sd.items():
    if k.startswith("layer") and k.endswith(".weight") and "conv" in k:
        parts=k.split("."); st=int(parts[0][5:])+1; b=parts[1]; br={"conv1":"branch2a","conv2":"branch2b","conv3":"branch2c"}[parts[2]]
        c2[f"res{st}_{b}_{br}_w"]=v.numpy()
        c2[f"res{st}_{b}_{br}_bn_s"]=torch.rand(v.shape[0]).numpy()
        c2[f"res{st}_{b}_{br}_bn_b"]=torch.rand(v.shape[0]).numpy()
    if "downsample.0.weight" in k:
        parts=k.split("."); st=int(parts[0][5:])+1
        c2[f"res{st}_0_branch1_w"]=v.numpy(); c2[f"res{st}_0_branch1_bn_s"]=torch.rand(v.shape[0]).numpy(); c2[f"res{st}_0_branch1_bn_b"]=torch.rand(v.shape[0]).numpy()
c2["fc1000_w"]=sd["fc.weight"].numpy(); c2["fc1000_b"]=sd["fc.bias"].numpy()
pickle.dump(c2, open("R-50-p2.pkl","wb"), protocol=2)
pickle.dump(c2, open("R-50-p4.pkl","wb"), protocol=4)
print(len(sd), len(c2))
