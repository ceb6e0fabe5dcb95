// The STEP reader's C++ side: OpenCascade reads the file into an XCAF document, meshes every
// free shape, and walks the document's tree, handing each part (name, parent) and each face's
// triangles (placed in model space, in millimetres, wound outward, with the colour the file
// gives) to the Rust side through a `PxSink`. Nothing of OpenCascade's crosses the boundary:
// only plain numbers and UTF-8 names, and every exception is caught here.
#include <BRepBndLib.hxx>
#include <BRepMesh_IncrementalMesh.hxx>
#include <Bnd_Box.hxx>
#include <IMeshTools_Parameters.hxx>
#include <Message.hxx>
#include <Message_ProgressIndicator.hxx>
#include <Message_ProgressScope.hxx>
#include <NCollection_DataMap.hxx>
#include <TDF_Label.hxx>
#include <TDF_LabelMapHasher.hxx>
#include <Message_Messenger.hxx>
#include <RWMesh.hxx>
#include <RWMesh_FaceIterator.hxx>
#include <STEPCAFControl_Reader.hxx>
#include <STEPControl_Reader.hxx>
#include <Standard_Failure.hxx>
#include <Standard_OutOfMemory.hxx>
#include <TColStd_SequenceOfAsciiString.hxx>
#include <TDF_LabelSequence.hxx>
#include <TDocStd_Document.hxx>
#include <XCAFApp_Application.hxx>
#include <XCAFDoc_DocumentTool.hxx>
#include <XCAFDoc_ShapeTool.hxx>
#include <XCAFPrs_DocumentExplorer.hxx>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <istream>
#include <new>
#include <streambuf>
#include <string>
#include <vector>

extern "C" {

// What the Rust side receives. `part` returns the new part's index; `triangles` takes `count`
// triangles as 9 coordinates each and returns 0, or anything else to stop the import.
struct PxSink {
  void* context;
  uint32_t (*part)(void* context, const char* name, size_t length, uint32_t parent);
  int32_t (*triangles)(void* context, const double* corners, size_t count, const float* rgb);
  // How much of the work is done, from 0 to 1: OpenCascade's own count of the transfer and the
  // meshing, called often (at most once a percent).
  void (*progress)(void* context, double done);
};

// The whole file's facts, for the caller's report.
struct PxStepInfo {
  double chordal;     // the chordal deflection used, in millimetres
  char unit[32];      // the file's length unit, as the file names it
};

int32_t px_step_read(const uint8_t* data, size_t length, double chordal, double angular,
                     const PxSink* sink, PxStepInfo* info, char* error, size_t error_capacity);
}

namespace {

const uint32_t ROOT = UINT32_MAX;

// Of the whole read, the share of parsing the file, and what follows it.
const double READING = 1.0 / 3.0;

// An istream over the caller's bytes, so the file is not copied, served a slice at a time so
// the reading's progress can be told: the parser's reading is the first third of the work.
class Bytes : public std::streambuf {
 public:
  Bytes(const uint8_t* data, size_t length, const PxSink* sink)
      : start_(reinterpret_cast<char*>(const_cast<uint8_t*>(data))), length_(length),
        sink_(sink) {
    setg(start_, start_, start_);
  }

 protected:
  int_type underflow() override {
    size_t served = static_cast<size_t>(egptr() - start_);
    if (served >= length_) return traits_type::eof();
    size_t next = std::min(length_, served + SLICE);
    setg(start_, start_ + served, start_ + next);
    sink_->progress(sink_->context, READING * static_cast<double>(served) / length_);
    return traits_type::to_int_type(*gptr());
  }

 private:
  static constexpr size_t SLICE = 256 * 1024;
  char* start_;
  size_t length_;
  const PxSink* sink_;
};

void say(char* error, size_t capacity, const std::string& text) {
  if (capacity == 0) return;
  size_t n = std::min(text.size(), capacity - 1);
  std::memcpy(error, text.data(), n);
  error[n] = '\0';
}

std::string utf8(const TCollection_AsciiString& name) { return std::string(name.ToCString()); }

// Hands OpenCascade's progress to the sink. OpenCascade calls `Show` under its own lock, from
// whichever thread advanced it.
class Reporter : public Message_ProgressIndicator {
 public:
  explicit Reporter(const PxSink* sink) : sink_(sink) {}

 protected:
  void Show(const Message_ProgressScope&, const Standard_Boolean force) override {
    double done = READING + (1.0 - READING) * GetPosition();
    if (force || done >= last_ + 0.01) {
      last_ = done;
      sink_->progress(sink_->context, done);
    }
  }

 private:
  const PxSink* sink_;
  double last_ = -1.0;
};

// Reads, meshes and walks; throws on anything OpenCascade throws.
int32_t read(const uint8_t* data, size_t length, double chordal, double angular,
             const PxSink* sink, PxStepInfo* info, char* error, size_t error_capacity) {
  Handle(XCAFApp_Application) app = XCAFApp_Application::GetApplication();
  Handle(TDocStd_Document) document;
  app->NewDocument("MDTV-XCAF", document);

  STEPCAFControl_Reader reader;
  reader.SetNameMode(true);
  reader.SetColorMode(true);
  reader.SetLayerMode(false);
  reader.SetPropsMode(false);
  reader.SetGDTMode(false);
  reader.SetMatMode(false);
  reader.SetViewMode(false);
  Bytes bytes(data, length, sink);
  std::istream stream(&bytes);
  if (reader.ChangeReader().ReadStream("upload.step", stream) != IFSelect_RetDone) {
    say(error, error_capacity, "not a STEP file OpenCascade can read");
    return 1;
  }
  TColStd_SequenceOfAsciiString lengths, angles, solid_angles;
  reader.ChangeReader().FileUnits(lengths, angles, solid_angles);
  std::string unit = lengths.IsEmpty() ? "" : utf8(lengths.First());
  say(info->unit, sizeof info->unit, unit);
  Handle(Reporter) reporter = new Reporter(sink);
  // The transfer into the document takes about as long as the meshing.
  Message_ProgressScope work(reporter->Start(), "STEP", 2);
  if (!reader.Transfer(document, work.Next())) {
    say(error, error_capacity, "OpenCascade could not transfer the file's shapes");
    return 1;
  }

  Handle(XCAFDoc_ShapeTool) shapes = XCAFDoc_DocumentTool::ShapeTool(document->Main());
  TDF_LabelSequence roots;
  shapes->GetFreeShapes(roots);
  // The model's size decides the chordal deflection, so it must be exact, not the B-splines'
  // control points (a screw's box would be half as large again). An exact box is costly, so
  // each product's is computed once, then placed where each of its instances is.
  Bnd_Box box;
  NCollection_DataMap<TDF_Label, Bnd_Box, TDF_LabelMapHasher> products;
  for (XCAFPrs_DocumentExplorer node(document, XCAFPrs_DocumentExplorerFlags_None); node.More();
       node.Next()) {
    const XCAFPrs_DocumentNode& here = node.Current();
    if (here.IsAssembly) continue;
    if (!products.IsBound(here.RefLabel)) {
      Bnd_Box own;
      TopoDS_Shape shape = XCAFDoc_ShapeTool::GetShape(here.RefLabel);
      shape.Location(TopLoc_Location());
      BRepBndLib::AddOptimal(shape, own, false, false);
      products.Bind(here.RefLabel, own);
    }
    const Bnd_Box& own = products.Find(here.RefLabel);
    if (!own.IsVoid()) box.Add(own.Transformed(here.Location.Transformation()));
  }
  if (box.IsVoid()) {
    say(error, error_capacity, "the file holds no shapes");
    return 1;
  }
  if (chordal <= 0.0) {
    double x0, y0, z0, x1, y1, z1;
    box.Get(x0, y0, z0, x1, y1, z1);
    chordal = std::max({x1 - x0, y1 - y0, z1 - z0}) * 0.001;
  }
  info->chordal = chordal;
  IMeshTools_Parameters meshing;
  meshing.Deflection = chordal;
  meshing.Angle = angular;
  meshing.InParallel = true;
  Message_ProgressScope meshes(work.Next(), "meshing", roots.Length());
  for (TDF_LabelSequence::Iterator root(roots); root.More(); root.Next()) {
    BRepMesh_IncrementalMesh(XCAFDoc_ShapeTool::GetShape(root.Value()), meshing, meshes.Next());
  }

  // Depth-first, a group before what it holds: the index of the part at each depth so far.
  std::vector<uint32_t> at_depth;
  std::vector<double> corners;
  for (XCAFPrs_DocumentExplorer node(document, XCAFPrs_DocumentExplorerFlags_None); node.More();
       node.Next()) {
    const XCAFPrs_DocumentNode& here = node.Current();
    size_t depth = static_cast<size_t>(node.CurrentDepth());
    at_depth.resize(depth);
    uint32_t parent = depth == 0 ? ROOT : at_depth[depth - 1];
    std::string name = utf8(RWMesh::FormatName(RWMesh_NameFormat_ProductOrInstance, here.Label,
                                               here.RefLabel));
    uint32_t part = sink->part(sink->context, name.data(), name.size(), parent);
    at_depth.push_back(part);
    if (here.IsAssembly) continue;
    for (RWMesh_FaceIterator face(here.RefLabel, here.Location, true, here.Style); face.More();
         face.Next()) {
      if (face.IsEmptyMesh()) continue;
      Quantity_Color colour = face.FaceColor().GetRGB();
      float rgb[3] = {-1.0f, -1.0f, -1.0f};
      if (face.HasFaceColor()) {
        rgb[0] = static_cast<float>(colour.Red());
        rgb[1] = static_cast<float>(colour.Green());
        rgb[2] = static_cast<float>(colour.Blue());
      }
      corners.clear();
      for (int t = face.ElemLower(); t <= face.ElemUpper(); ++t) {
        Poly_Triangle triangle = face.TriangleOriented(t);
        for (int corner = 1; corner <= 3; ++corner) {
          gp_Pnt p = face.NodeTransformed(triangle.Value(corner));
          corners.insert(corners.end(), {p.X(), p.Y(), p.Z()});
        }
      }
      if (sink->triangles(sink->context, corners.data(), corners.size() / 9, rgb) != 0) {
        say(error, error_capacity, "the file's triangles were refused");
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace

int32_t px_step_read(const uint8_t* data, size_t length, double chordal, double angular,
                     const PxSink* sink, PxStepInfo* info, char* error, size_t error_capacity) {
  try {
    // OpenCascade reports what it reads on stdout by default; the caller reports for itself.
    Message::DefaultMessenger()->RemovePrinters(STANDARD_TYPE(Message_Printer));
    return read(data, length, chordal, angular, sink, info, error, error_capacity);
  } catch (const Standard_OutOfMemory&) {
    say(error, error_capacity, "OpenCascade ran out of memory");
  } catch (const Standard_Failure& failure) {
    say(error, error_capacity,
        std::string("OpenCascade failed: ") + failure.DynamicType()->Name() + ": " +
            failure.GetMessageString());
  } catch (const std::bad_alloc&) {
    say(error, error_capacity, "OpenCascade ran out of memory");
  } catch (const std::exception& failure) {
    say(error, error_capacity, std::string("OpenCascade failed: ") + failure.what());
  } catch (...) {
    say(error, error_capacity, "OpenCascade failed with an unknown exception");
  }
  return 2;
}
